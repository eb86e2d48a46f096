'''
Fuzzing an actor's IPC server with random and mutated frames.

Each test starts one daemon actor and plays a hand-rolled peer
(`RawPeer`) against it, sending thousands of hypothesis-made inputs
after authenticating (and some before):

- (a) arbitrary msgpack values, correctly framed;
- (b) dicts shaped like protocol messages, with random field values;
- (c) valid messages whose encoding got mutated (bit flips, truncation,
  duplicated bytes, a wrong length prefix), and (d) random bytes;
- valid `Start` requests for `echo` with random, sometimes absurdly
  deeply nested, arguments.

After every input a probe (a real `echo` request on the same connection)
tells whether the actor kept the connection. What it must do follows
from the wire spec:

- a frame it can make nothing of (no msgpack at all), a length prefix
  above the limit or a stream ending mid-frame costs the connection, and
  only it;
- anything else keeps the connection (the one valid message that ends
  it is a peer-runtime `Error`, one without a `cid`);
- every request (`msg_type` 'Start' with a str `cid`) gets a final
  reply with its `cid` (a result or an `Error`), never silence, and
  `echo` returns exactly what it got;
- before authenticating, a peer learns nothing but the actor's
  `AuthChallenge`.

Between batches the test's own portal calls `echo` (the actor keeps
serving everyone). At the end the actor must hold nothing for the gone
fuzzer (RPC tasks, receive budget) and its memory must not have grown by
more than `RSS_GROWTH_LIMIT`.

The inputs are drawn up front from a fixed seed (`TRACTOR_FUZZ_SEED`
picks another, `TRACTOR_FUZZ_EXAMPLES` scales how many), so every run of
one checkout sends the same bytes, whatever the backend or transport
(each test prints a digest of them; hypothesis also mixes in constants
from the project's source, so editing it may change them). A failure
shows the input in hex, to replay it by hand.

'''
from __future__ import annotations

import functools
import hashlib
import os
import random
import struct
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import (
    dataclass,
    field,
)
from itertools import batched
from types import SimpleNamespace
from typing import (
    Any,
    AsyncIterator,
    Iterable,
    Sequence,
)

import msgspec
import trio
import tractor
from tractor._testing import nursery_kwargs
from tractor._testing.raw_peer import (
    RawPeer,
    frame,
)
from tractor.ipc._auth import current_secret
from tractor.ipc._transport import (
    MAX_MSG_SIZE,
    recv_budget,
)
from tractor.msg import types as msgtypes


# ---- functions run inside the target actor ----
#
# It imports this whole module for them, and in a `subint` actor neither
# hypothesis nor psutil can be imported (their compiled parts refuse
# sub-interpreters): both are only imported where they are used.

async def echo(value):
    return value


async def accept_addrs() -> list:
    return [list(addr) for addr in tractor.current_actor().accept_addrs]


async def leftovers() -> dict:
    '''What the fuzzing could have left behind in this actor.'''
    return {
        'recv_budget_used': recv_budget().used,
        # minus this very call
        'rpc_tasks': len(tractor.current_actor()._rpc_tasks) - 1,
    }


NOTHING_LEFT: dict = {'recv_budget_used': 0, 'rpc_tasks': 0}


# ---- knobs ----

FUZZ_SEED: int = int(os.environ.get('TRACTOR_FUZZ_SEED', '20260501'))
# examples drawn per strategy; a test draws a few multiples of this
FUZZ_EXAMPLES: int = int(os.environ.get('TRACTOR_FUZZ_EXAMPLES', '300'))
# the actor's RSS may grow by this much over a test (after a warm-up batch)
RSS_GROWTH_LIMIT: int = 50 * 2**20
# inputs played between two checks through the test's own portal
BATCH_SIZE: int = 100
# the actor answers (or drops us) within this after an input
CASE_TIMEOUT: float = 5.0
# the whole test, once its inputs are drawn (a default run takes a few s)
TEST_TIMEOUT: float = 60.0 * max(1, FUZZ_EXAMPLES / 300)
# pre-auth connections open at once (the server caps pending handshakes)
PREAUTH_CONCURRENCY: int = 8
# how much of a failing input an assertion shows
SHOWN_BYTES: int = 4096

MODULE: str = __name__
# who the fuzzer authenticates as: a `Start.uid` is right when it is this
FUZZER_UID: tuple[str, str] = ('fuzzer', 'f0f0f0f0-0000-4000-8000-0000f0f0f0f0')
# generated cids never start like this, so a probe's reply is its own
PROBE_CID_PREFIX: str = 'probe:5c1e7d0a:'
# the replies that end a request
FINAL_REPLIES: frozenset[str] = frozenset({'Return', 'Error', 'CancelAck'})
# every message type's fields, in wire order
MSG_FIELDS: dict[str, list[str]] = {
    msgtype.__name__: [
        info.encode_name for info in msgspec.structs.fields(msgtype)
    ]
    for msgtype in [
        *msgtypes.__msg_types__,
        msgtypes.AuthChallenge,
        msgtypes.AuthProof,
    ]
}


def encode(obj: Any) -> bytes:
    return msgspec.msgpack.encode(obj)


def start_msg(cid: str, kwargs: dict) -> msgtypes.Start:
    '''A valid request for this module's `echo`.'''
    return msgtypes.Start(
        cid=cid, ns=MODULE, func='echo', kwargs=kwargs, uid=FUZZER_UID,
    )


def nested(depth: int, kind: str) -> bytes:
    '''
    The msgpack of a value nested `depth` levels deep, built by hand:
    encoders (and `repr()`) give up far earlier.
    '''
    opener = {'list': b'\x91', 'map': b'\x81\xa1k'}[kind]
    return opener * depth + b'\xc0'


def mutate(data: bytes, ops: Iterable[tuple[str, int, int]]) -> bytes:
    '''
    `data` with every mutation `(what, where, amount)` of `ops` applied
    in turn; `where` wraps around the data, `amount` is cut to size.
    '''
    buf = bytearray(data)
    for what, where, amount in ops:
        pos = where % (len(buf) + 1)
        span = 1 + amount % 16
        if what == 'flip' and pos < len(buf):
            buf[pos] ^= 1 << (amount % 8)
        elif what == 'set' and pos < len(buf):
            buf[pos] = amount % 256
        elif what == 'truncate':
            del buf[pos:]
        elif what == 'duplicate':
            buf[pos:pos] = buf[pos:pos + span]
        elif what == 'delete':
            del buf[pos:pos + span]
        elif what == 'insert':
            buf[pos:pos] = amount.to_bytes(4, 'little')[:span % 5]
        elif what == 'prefix' and len(buf) >= 4:
            buf[:4] = struct.pack('<I', amount)
        elif what == 'prefix_delta' and len(buf) >= 4:
            (size,) = struct.unpack_from('<I', buf)
            buf[:4] = struct.pack('<I', (size + amount % 17 - 8) % 2**32)
    return bytes(buf)


# ---- strategies ----

@functools.cache
def strategies() -> SimpleNamespace:
    '''Every strategy the tests draw from (built on first use, see above).'''
    from hypothesis import strategies as st

    # the ints msgpack can carry
    ints = st.integers(min_value=-2**63, max_value=2**64 - 1)
    msgpack_keys = st.one_of(
        st.text(max_size=10), ints, st.binary(max_size=8),
        st.none(), st.booleans(),
    )
    msgpack_leaves = st.one_of(
        msgpack_keys,
        st.floats(),
        st.text(),
        st.binary(),
        st.builds(
            msgspec.msgpack.Ext,
            # negative codes are reserved (-1: timestamps)
            st.integers(min_value=0, max_value=127),
            st.binary(max_size=16),
        ),
    )
    # (a) anything msgpack can carry
    msgpack_values = st.recursive(
        msgpack_leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=6),
            st.dictionaries(msgpack_keys, children, max_size=6),
        ),
        max_leaves=30,
    )

    names = st.text(max_size=16)
    uids = st.one_of(
        st.just(list(FUZZER_UID)),
        st.tuples(names, names).map(list),
        st.lists(names, max_size=3),
    )
    addrs = st.lists(st.tuples(names, names | ints), max_size=2)
    small_dicts = st.dictionaries(names, msgpack_values, max_size=3)
    error_type_names = names | st.sampled_from([
        'RuntimeError', 'ContextCancelled', 'MsgTypeError', 'StreamOverrun',
        'KeyboardInterrupt', 'BaseException', 'TransportClosed',
    ])
    functypes = st.sampled_from(['asyncfunc', 'asyncgen', 'context'])
    # plausibly typed values for every field of the protocol's messages
    field_values: dict[str, st.SearchStrategy] = {
        'cid': names,
        'ns': names | st.sampled_from([MODULE, 'self', 'builtins', 'os']),
        'func': names | st.sampled_from([
            'echo', 'leftovers', 'accept_addrs', '_cancel_task', 'cancel',
            '__init__', 'FUZZ_SEED',
        ]),
        'kwargs': st.one_of(
            st.fixed_dictionaries({'value': msgpack_values}),
            st.fixed_dictionaries({'cid': names}),
            small_dicts,
        ),
        'uid': uids,
        'pld_spec': st.just('typing.Any') | names,
        'functype': functypes | names,
        'pld': msgpack_values,
        'src_uid': uids,
        'src_type_str': error_type_names,
        'boxed_type_str': error_type_names,
        'relay_path': st.lists(uids, max_size=3),
        'message': st.none() | st.text(),
        'tb_str': st.text(),
        'canceller': st.none() | uids,
        'sender': st.none() | uids,
        '_bad_msg': st.none() | small_dicts,
        '_bad_msg_as_dict': st.none() | small_dicts,
        'name': names,
        'uuid': names,
        'pid': st.none() | ints,
        'is_registrar': st.none() | st.booleans(),
        'is_probe': st.booleans(),
        'nonce': st.binary(min_size=32, max_size=32) | st.binary(),
        'mac': st.binary(min_size=32, max_size=32) | st.binary(),
        'aid': st.binary() | small_dicts,
        '_parent_main_data': small_dicts,
        '_runtime_vars': small_dicts,
        'enable_modules': st.dictionaries(names, names, max_size=3),
        'reg_addrs': addrs,
        'bind_addrs': st.none() | addrs,
    }
    # requests are what an actor acts on: make them the most common
    msg_type_names = st.sampled_from(['Start'] * 4 + sorted(MSG_FIELDS))

    @st.composite
    def protocol_shaped_msgs(draw) -> dict:
        '''
        (b) a dict laid out like a protocol message: mostly a real
        `msg_type`, then its fields, each plausibly typed, of a wrong
        type or missing, maybe unknown ones, maybe in another order.
        '''
        if draw(st.integers(0, 9)) < 8:
            msg_type = draw(msg_type_names)
            fields = MSG_FIELDS[msg_type]
        else:
            msg_type = draw(msgpack_leaves)
            fields = draw(st.sampled_from(sorted(MSG_FIELDS.values())))
        msg = {'msg_type': msg_type}
        for name in fields:
            shape = draw(st.sampled_from(['typed'] * 8 + ['wrong', 'missing']))
            if shape == 'typed':
                msg[name] = draw(field_values[name])
            elif shape == 'wrong':
                msg[name] = draw(msgpack_values)
        msg.update(draw(st.dictionaries(msgpack_keys, msgpack_values, max_size=2)))
        if draw(st.integers(0, 3)) == 0:
            msg = dict(draw(st.permutations(list(msg.items()))))
        return msg

    cids = names
    valid_msgs = st.one_of(
        st.builds(
            start_msg, cids, st.fixed_dictionaries({'value': msgpack_values}),
        ),
        st.builds(msgtypes.Yield, cid=cids, pld=msgpack_values),
        st.builds(msgtypes.Started, cid=cids, pld=msgpack_values),
        st.builds(msgtypes.Return, cid=cids, pld=msgpack_values),
        st.builds(msgtypes.Stop, cid=cids),
        st.builds(msgtypes.StartAck, cid=cids, functype=functypes),
        st.builds(msgtypes.CancelAck, cid=cids, pld=st.booleans()),
        st.builds(
            msgtypes.Error,
            src_uid=st.just(FUZZER_UID),
            src_type_str=error_type_names,
            boxed_type_str=error_type_names,
            relay_path=st.just([FUZZER_UID]),
            message=st.text(),
            cid=cids,
        ),
    )
    handshake_msgs = st.one_of(
        st.builds(
            msgtypes.AuthChallenge, nonce=st.binary(min_size=32, max_size=32),
        ),
        st.builds(
            msgtypes.AuthProof,
            aid=st.builds(msgtypes.Aid, name=names, uuid=names).map(
                lambda aid: msgspec.Raw(encode(aid))
            ),
            mac=st.binary(min_size=32, max_size=32),
        ),
    )
    mutations = st.tuples(
        st.sampled_from([
            'flip', 'set', 'truncate', 'duplicate', 'delete', 'insert',
            'prefix', 'prefix_delta',
        ]),
        st.integers(min_value=0, max_value=2**16),
        st.one_of(
            st.integers(min_value=0, max_value=2**32 - 1),
            # as a length prefix: a frame the actor reserves budget for
            st.integers(min_value=2**16, max_value=MAX_MSG_SIZE),
        ),
    )

    @st.composite
    def mutated_frames(draw, msgs: st.SearchStrategy = valid_msgs) -> bytes:
        '''
        (c) a valid message's wire bytes, mutated: either only its body
        (the length prefix then fits again) or the whole frame.
        '''
        body = encode(draw(msgs))
        ops = draw(st.lists(mutations, min_size=1, max_size=4))
        if draw(st.booleans()):
            return frame(mutate(body, ops))
        return mutate(frame(body), ops)

    # (d) random bytes, as they come or behind a fitting length prefix
    random_wire = st.binary(max_size=300) | st.binary(max_size=300).map(frame)

    def framed(msgs: st.SearchStrategy) -> st.SearchStrategy:
        return msgs.map(lambda msg: frame(encode(msg)))

    def some_framed(msgs: st.SearchStrategy) -> st.SearchStrategy:
        '''A few of `msgs` framed back to back: one input.'''
        return st.lists(framed(msgs), min_size=1, max_size=6).map(b''.join)

    return SimpleNamespace(
        msgpack_values=msgpack_values,
        framed_msgpack_values=some_framed(msgpack_values),
        framed_protocol_shaped_msgs=some_framed(protocol_shaped_msgs()),
        mutated_frames=mutated_frames(),
        mutated_handshakes=mutated_frames(handshake_msgs | valid_msgs),
        random_wire=random_wire,
        # a valid challenge gets a handshake going, then comes junk or a
        # request, which must not be served
        challenge_then_junk=st.tuples(
            framed(handshake_msgs),
            random_wire | framed(valid_msgs),
        ).map(b''.join),
    )


def draw_examples(strategy, count: int) -> list:
    '''
    `count` examples of `strategy` (fewer if it has no more), the same
    ones for one `FUZZ_SEED`: hypothesis only generates here, the test
    then sends them all to one live actor.
    '''
    import hypothesis

    examples: list = []

    @hypothesis.seed(FUZZ_SEED)
    @hypothesis.settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(strategy)
    def collect(example):
        examples.append(example)

    collect()
    return examples


def shuffled(items: list) -> list:
    '''`items` in an order fixed by the seed, so input kinds interleave.'''
    items = list(items)
    random.Random(FUZZ_SEED).shuffle(items)
    return items


# ---- what the actor must do with an input ----

def cut_frames(wire: bytes, limit: int = MAX_MSG_SIZE) -> tuple[list[bytes], str]:
    '''
    The frame bodies the actor cuts out of `wire`, and how `wire` ends
    for it: 'boundary' (it waits for the next frame), 'mid-frame' (it
    waits for the rest of one) or 'oversized' (a length prefix above
    `limit`: it drops the connection there).
    '''
    bodies: list[bytes] = []
    pos = 0
    while pos < len(wire):
        if len(wire) - pos < 4:
            return bodies, 'mid-frame'
        (size,) = struct.unpack_from('<I', wire, pos)
        if size > limit:
            return bodies, 'oversized'
        if len(wire) - pos - 4 < size:
            return bodies, 'mid-frame'
        bodies.append(wire[pos + 4:pos + 4 + size])
        pos += 4 + size
    return bodies, 'boundary'


# what the actor decodes every frame with: payloads stay raw
_msg_dec = msgspec.msgpack.Decoder(msgtypes.mk_msg_spec(msgspec.Raw)[0])


class Reading:
    '''One frame body, read both ways the actor reads frames.'''

    def __init__(self, body: bytes) -> None:
        try:
            self.msg = _msg_dec.decode(body)
        except (msgspec.DecodeError, RecursionError):
            self.msg = None
        self.obj: Any = None
        self.is_msgpack = True
        try:
            self.obj = msgspec.msgpack.decode(body)
        except RecursionError:
            pass  # intact, only nested deeper than this stack decodes
        except msgspec.DecodeError:
            self.is_msgpack = False

    @property
    def readable(self) -> bool:
        '''
        Whether the actor can make anything of it; if not, framing can
        not be trusted any more and the connection is dropped. (The
        message decoder is the laxer one in places: it does not check the
        UTF-8 of keys it ignores.)
        '''
        return self.msg is not None or self.is_msgpack

    @property
    def cancels_actor(self) -> bool:
        '''A request for `self:cancel`, which legitimately ends the actor.'''
        return (
            isinstance(self.msg, msgtypes.Start)
            and (self.msg.ns, self.msg.func) == ('self', 'cancel')
        )

    @property
    def ends_connection(self) -> bool:
        '''An `Error` without a `cid`: the peer says its runtime failed.'''
        return isinstance(self.msg, msgtypes.Error) and self.msg.cid is None

    @property
    def request_cid(self) -> str|None:
        '''The `cid` of a request, valid or not, which needs a reply.'''
        if isinstance(self.msg, msgtypes.Start):
            return self.msg.cid
        obj = self.obj
        if (
            isinstance(obj, dict)
            and obj.get('msg_type') == 'Start'
            and isinstance(obj.get('cid'), str)
        ):
            return obj['cid']
        return None


@dataclass
class Case:
    '''One input, and what the wire spec says the actor does about it.'''
    wire: bytes
    # how the framing ends: see `cut_frames()`
    ending: str
    # 'kept', 'dropped' or 'either'
    connection: str
    # cid -> how many requests with it need a final reply
    requests: Counter[str] = field(default_factory=Counter)
    # cid -> the encoded value an `echo` request must get back
    echoes: dict[str, bytes] = field(default_factory=dict)
    # whether the actor may refuse those with an `Error` instead
    echo_refusable: bool = False

    def __str__(self) -> str:
        return f'{self.ending} input {shown(self.wire)}'


def shown(wire: bytes) -> str:
    '''`wire` in hex (up to a size): enough to replay an input by hand.'''
    text = f'(seed {FUZZ_SEED}): {wire[:SHOWN_BYTES].hex()}'
    if len(wire) > SHOWN_BYTES:
        text += f'... ({len(wire)} bytes)'
    return text


def case_of(wire: bytes) -> Case|None:
    '''The `Case` for sending `wire` after authenticating; None if unsafe.'''
    bodies, ending = cut_frames(wire)
    connection = 'kept' if ending == 'boundary' else 'dropped'
    requests: Counter[str] = Counter()
    for body in bodies:
        reading = Reading(body)
        if reading.cancels_actor:
            return None
        if not reading.readable:
            connection = 'dropped'
            break
        if reading.ends_connection:
            # unless the actor fails to unbox it: then it only logs it
            connection = 'either'
            break
        if (cid := reading.request_cid) is not None:
            requests[cid] += 1
    return Case(wire, ending, connection, requests)


def cases_of(wires: Iterable[bytes]) -> list[Case]:
    return [case for wire in wires if (case := case_of(wire)) is not None]


def echo_case(cid: str, value: bytes, refusable: bool = False) -> Case:
    '''A valid `echo` request whose argument is the encoded `value`.'''
    wire = frame(encode(start_msg(cid, {'value': msgspec.Raw(value)})))
    # spelled out: a deep `value` does not even decode here
    return Case(
        wire, 'boundary', 'kept', Counter({cid: 1}), {cid: value}, refusable,
    )


def deep_uid_case(cid: str, uid: bytes) -> Case:
    '''A request whose `uid` is the encoded (deeply nested) `uid`.'''
    msg = start_msg(cid, {'value': None})
    msg.uid = msgspec.Raw(uid)
    return Case(frame(encode(msg)), 'boundary', 'kept', Counter({cid: 1}))


def asks_to_cancel(wire: bytes) -> bool:
    '''Whether any frame the actor would read in `wire` is `self:cancel`.'''
    for body in cut_frames(wire)[0]:
        reading = Reading(body)
        if reading.cancels_actor:
            return True
        if not reading.readable:
            return False  # the actor stops reading there
    return False


# ---- the fuzzing peer ----

class Reply(msgspec.Struct):
    '''What the fuzzer reads of the actor's messages: payloads stay raw.'''
    msg_type: str
    cid: str|None = None
    pld: msgspec.Raw = msgspec.Raw(b'')


_reply_dec = msgspec.msgpack.Decoder(Reply)


class FuzzConnection:
    '''An authenticated raw connection, and the final replies read on it.'''

    def __init__(self, peer: RawPeer) -> None:
        self.peer = peer
        self.replies: dict[str, list[Reply]] = {}
        self.closed = False
        self._news = trio.Event()

    async def read_replies(self) -> None:
        try:
            while (body := await self.peer.recv_frame()) is not None:
                reply = _reply_dec.decode(body)
                if reply.msg_type in FINAL_REPLIES and reply.cid is not None:
                    self.replies.setdefault(reply.cid, []).append(reply)
                    self._news.set()
        finally:
            self.closed = True
            self._news.set()
            with trio.CancelScope(shield=True):
                await self.peer.aclose()

    async def _next_news(self) -> None:
        self._news = trio.Event()
        await self._news.wait()

    async def wait_replies(self, expected: Counter[str]) -> bool:
        '''
        Wait for `expected[cid]` final replies to each cid; False if the
        actor dropped the connection first.
        '''
        while any(
            len(self.replies.get(cid, ())) < count
            for cid, count in expected.items()
        ):
            if self.closed:
                return False
            await self._next_news()
        return True

    async def wait_closed(self) -> None:
        while not self.closed:
            await self._next_news()


class Fuzzer:
    '''
    Plays `Case`s against one actor over an authenticated connection,
    opening a new one whenever the actor dropped the last.
    '''

    def __init__(self, addr: tuple, nursery: trio.Nursery) -> None:
        self.addr = addr
        self._nursery = nursery
        self._conn: FuzzConnection|None = None
        self._probes = 0
        self.connections = 0
        self.frames = 0

    async def connection(self) -> FuzzConnection:
        if self._conn is None or self._conn.closed:
            peer = await RawPeer.connect(self.addr)
            aid = await peer.authenticate(
                current_secret().value,
                name=FUZZER_UID[0],
                uuid=FUZZER_UID[1],
            )
            assert aid is not None, 'the actor refused the right secret'
            self._conn = FuzzConnection(peer)
            self._nursery.start_soon(self._conn.read_replies)
            self.connections += 1
        return self._conn

    def _next_probe(self) -> tuple[str, bytes]:
        self._probes += 1
        cid = f'{PROBE_CID_PREFIX}{self._probes}'
        return cid, frame(encode(start_msg(cid, {'value': self._probes})))

    async def play(self, case: Case) -> None:
        '''Send `case` and check what the actor made of it.'''
        conn = await self.connection()
        conn.replies.clear()
        expected = Counter(case.requests)
        wire = case.wire
        if case.ending == 'boundary':
            probe_cid, probe = self._next_probe()
            expected[probe_cid] += 1
            wire += probe
        self.frames += len(cut_frames(case.wire)[0])
        try:
            await conn.peer.send_raw(wire)
            if case.ending == 'mid-frame':
                # or the actor would wait for the rest of the frame
                await conn.peer.stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # dropped already: the reader sees it too

        with trio.move_on_after(CASE_TIMEOUT):
            if case.ending == 'boundary':
                kept = await conn.wait_replies(expected)
            else:
                await conn.wait_closed()
                kept = False
            if case.connection != 'either':
                assert kept == (case.connection == 'kept'), (
                    f'the actor {"kept" if kept else "dropped"} the '
                    f'connection, expected it {case.connection}: {case}'
                )
            if kept:
                check_echoes(conn.replies, case)
            return
        raise AssertionError(
            f'no answer within {CASE_TIMEOUT} s, expected replies to '
            f'{dict(expected)} or a dropped connection: {case}'
        )

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.peer.aclose()
            await self._conn.wait_closed()


def check_echoes(replies: dict[str, list[Reply]], case: Case) -> None:
    '''`echo` gave back exactly what it got (or, if it may, refused).'''
    for cid, value in case.echoes.items():
        (reply,) = replies[cid]
        if reply.msg_type == 'Error' and case.echo_refusable:
            continue
        assert reply.msg_type == 'Return', f'{reply!r} for {case}'
        assert bytes(reply.pld) == value, (
            f'`echo` returned {bytes(reply.pld)[:64]!r}... for {case}'
        )


@asynccontextmanager
async def open_fuzzer(addr: tuple) -> AsyncIterator[Fuzzer]:
    async with trio.open_nursery() as tn:
        fuzzer = Fuzzer(addr, tn)
        try:
            yield fuzzer
        finally:
            await fuzzer.aclose()


async def play_preauth(addr: tuple, wire: bytes) -> None:
    '''
    Send `wire` on a fresh connection instead of authenticating: the
    actor must drop it, having sent at most its own challenge.
    '''
    peer = await RawPeer.connect(addr)
    try:
        await peer.send_raw(wire)
        await peer.stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    with trio.fail_after(CASE_TIMEOUT):
        got = await peer.wait_closed()
    await peer.aclose()
    sent_back = [msg.get('msg_type') for msg in got]
    assert sent_back in ([], ['AuthChallenge']), (
        f'an unauthenticated peer got {sent_back} for {shown(wire)}'
    )


async def play_all_preauth(addr: tuple, wires: Sequence[bytes]) -> None:
    limit = trio.Semaphore(PREAUTH_CONCURRENCY)

    async def play_one(wire: bytes) -> None:
        async with limit:
            await play_preauth(addr, wire)

    async with trio.open_nursery() as tn:
        for wire in wires:
            tn.start_soon(play_one, wire)


# ---- running a fuzz session against one actor ----

def digest(wires: Iterable[bytes]) -> str:
    '''A short fingerprint of the inputs: equal runs send equal ones.'''
    hasher = hashlib.blake2b(digest_size=8)
    for wire in wires:
        hasher.update(struct.pack('<Q', len(wire)))
        hasher.update(wire)
    return hasher.hexdigest()


def rss(pid: int) -> int:
    import psutil
    return psutil.Process(pid).memory_info().rss


async def check_serving(portal: tractor.Portal, token: Any) -> None:
    with trio.fail_after(CASE_TIMEOUT):
        assert await portal.run(echo, value=token) == token


async def check_nothing_left(portal: tractor.Portal) -> None:
    '''Once the fuzzer is gone, the actor holds nothing for it.'''
    with trio.move_on_after(CASE_TIMEOUT):
        while (left := await portal.run(leftovers)) != NOTHING_LEFT:
            # its tasks may still be winding down
            await trio.sleep(0.05)
        return
    raise AssertionError(f'the actor still holds {left} for the gone fuzzer')


def fuzz_one_actor(
    reg_addr: tuple,
    start_method: str,
    cases: list[Case],
    preauth_wires: Sequence[bytes] = (),
) -> None:
    '''
    Start a daemon actor and play `cases`, then `preauth_wires`, against
    it, checking between batches that it serves its parent, and at the
    end that it holds nothing of the fuzzer's and kept its memory.
    '''
    async def main():
        with trio.fail_after(TEST_TIMEOUT):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'fuzz_target',
                    enable_modules=[__name__],
                )
                (addr, *_) = await portal.run(accept_addrs)
                addr = tuple(addr)
                # with the `subint` backend the actor lives in this
                # process: the bound then covers the fuzzer's side too
                pid = portal.chan.aid.pid
                rss_before: int|None = None

                async with open_fuzzer(addr) as fuzzer:
                    for nth, batch in enumerate(batched(cases, BATCH_SIZE)):
                        for case in batch:
                            await fuzzer.play(case)
                        await check_serving(portal, nth)
                        if rss_before is None:
                            # after a warm-up batch: first-use allocations
                            # (code paths, caches) are no growth
                            rss_before = rss(pid)

                await play_all_preauth(addr, preauth_wires)
                await check_serving(portal, 'at the end')
                await check_nothing_left(portal)
                grown = rss(pid) - (rss_before or 0)
                print(
                    f'{len(cases)} inputs ({fuzzer.frames} whole frames) '
                    f'over {fuzzer.connections} connections, '
                    f'{len(preauth_wires)} before authenticating, digest '
                    f'{digest([c.wire for c in cases] + list(preauth_wires))}; '
                    f'the actor grew by {grown / 2**20:.1f} MiB'
                )
                assert rss_before is None or grown < RSS_GROWTH_LIMIT, (
                    f'the actor grew by {grown / 2**20:.1f} MiB over '
                    f'{len(cases)} inputs'
                )
                await portal.cancel_actor()

    trio.run(main)


# ---- the tests ----

def test_fuzz_arbitrary_msgpack(reg_addr, start_method, tpt_proto):
    '''
    (a) Any msgpack value, correctly framed (a few per input), is at
    worst an invalid message: dropped, and the connection goes on.
    '''
    wires = draw_examples(strategies().framed_msgpack_values, 2 * FUZZ_EXAMPLES)
    fuzz_one_actor(reg_addr, start_method, cases_of(wires))


def test_fuzz_protocol_shaped_msgs(reg_addr, start_method, tpt_proto):
    '''
    (b) Messages of real or junk types with fields of any type: every
    request among them is answered, and nothing else ends the connection
    but a peer-runtime `Error`.
    '''
    wires = draw_examples(
        strategies().framed_protocol_shaped_msgs,
        2 * FUZZ_EXAMPLES,
    )
    fuzz_one_actor(reg_addr, start_method, cases_of(wires))


def test_fuzz_mutated_and_random_frames(reg_addr, start_method, tpt_proto):
    '''
    (c, d) Mutated encodings of valid messages and random bytes, after
    authenticating (broken framing costs the connection: reconnect) and
    before (dropped, having learnt nothing).
    '''
    fuzz = strategies()
    wires = [
        *draw_examples(fuzz.mutated_frames, 2 * FUZZ_EXAMPLES),
        *draw_examples(fuzz.random_wire, FUZZ_EXAMPLES),
    ]
    preauth_wires = [
        *draw_examples(fuzz.random_wire, FUZZ_EXAMPLES // 4),
        *draw_examples(fuzz.mutated_handshakes, FUZZ_EXAMPLES // 4),
        *draw_examples(fuzz.challenge_then_junk, FUZZ_EXAMPLES // 4),
    ]
    fuzz_one_actor(
        reg_addr,
        start_method,
        shuffled(cases_of(wires)),
        [wire for wire in preauth_wires if not asks_to_cancel(wire)],
    )


def test_fuzz_echo_requests(reg_addr, start_method, tpt_proto):
    '''
    Valid `echo` requests with random arguments get exactly them back;
    arguments nested too deeply for the actor get an `Error`, and so
    do requests with a deeply nested `uid`: never silence.
    '''
    fuzz = strategies()
    values = draw_examples(fuzz.msgpack_values, 2 * FUZZ_EXAMPLES)
    cases = [
        echo_case(f'echo-{nth}', encode(value))
        for nth, value in enumerate(values)
    ]
    for depth in (1_000, 20_000, 200_000, 1_000_000):
        for kind in ('list', 'map'):
            cases.append(echo_case(
                f'deep-{kind}-{depth}', nested(depth, kind), refusable=True,
            ))
            cases.append(deep_uid_case(f'deep-uid-{kind}-{depth}', nested(depth, kind)))
    fuzz_one_actor(reg_addr, start_method, shuffled(cases))
