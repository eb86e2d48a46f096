'''
Peer authentication and the hardening around it, checked from the
outside: hostile raw peers, real tractor clients holding another secret,
the secret's way into spawned children, pre-authentication resource
bounds and where the secret comes from.

Hostile peers are played by `tractor._testing.raw_peer`, which speaks
the wire protocol by hand. Where a test shows a request refused, it
mostly also shows the same request served once made with the right
secret, so a refusal can not pass by accident (say, a malformed request).
'''
import os
import signal
import stat
import struct
import subprocess
import sys
import tempfile
from contextlib import asynccontextmanager as acm
from functools import partial
from pathlib import Path

import msgspec
import psutil
import pytest
import trio

import tractor
from tractor._exceptions import (
    AuthenticationFailed,
    HandshakeFailed,
)
from tractor._testing import (
    nursery_kwargs,
    repodir,
)
from tractor._testing.addr import get_rando_addr
from tractor._testing.raw_peer import (
    RawPeer,
    aid_dict,
    encode,
    frame,
)
from tractor.ipc import _chan, _server
from tractor.ipc._auth import (
    SECRET_ENV_VAR,
    Secret,
    current_secret,
    secret_digest,
)
from tractor.ipc._chan import Channel


WRONG_SECRET = b'not-the-secret-of-this-tree'


# ---- functions run inside child actors ----

async def echo(value):
    return value


async def accept_addr() -> list:
    return list(tractor.current_actor().accept_addrs[0])


async def pid() -> int:
    return os.getpid()


async def tree_secret_digest() -> str:
    return secret_digest(current_secret())


async def environ_holds(value: str) -> bool:
    return any(value in env_value for env_value in os.environ.values())


# ---- raw wire messages ----

def challenge() -> dict:
    return {'msg_type': 'AuthChallenge', 'nonce': os.urandom(32)}


def start(uid: tuple[str, str], ns: str, func: str, **kwargs) -> dict:
    '''A `Start` asking to run `ns:func(**kwargs)` on behalf of `uid`.'''
    return {
        'msg_type': 'Start',
        'cid': f'cid-{func}',
        'ns': ns,
        'func': func,
        'kwargs': kwargs,
        'uid': list(uid),
        'pld_spec': 'typing.Any',
    }


def forged_session(uid: tuple[str, str], *then: dict) -> bytes:
    '''
    A whole session in one write, not waiting for the actor's nonce: our
    challenge, a proof for `uid` whose MAC is garbage, then `then`; an
    actor acting on anything buffered behind a failed proof would run it.
    '''
    aid_bytes = encode(aid_dict(*uid))
    proof = {
        'msg_type': 'AuthProof',
        'aid': msgspec.Raw(aid_bytes),
        'mac': os.urandom(32),
    }
    return b''.join(frame(encode(msg)) for msg in (challenge(), proof, *then))


def unauthenticated_session(uid: tuple[str, str], *then: dict) -> bytes:
    '''The pre-authentication protocol: an `Aid` first, then `then`.'''
    return b''.join(frame(encode(msg)) for msg in (aid_dict(*uid), *then))


# ---- helpers ----

async def send_until_dropped(peer: RawPeer, data: bytes) -> None:
    try:
        await peer.send_raw(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # already dropped


async def replies_until_dropped(addr, data: bytes, timeout: float = 5) -> list:
    '''Send `data` on a fresh connection; every message received before it closed.'''
    peer = await RawPeer.connect(addr)
    try:
        await send_until_dropped(peer, data)
        with trio.fail_after(timeout):
            return await peer.wait_closed()
    finally:
        await peer.aclose()


async def authenticate(addr, secret: bytes, uid=('raw_peer', None)) -> RawPeer|None:
    '''A raw connection authenticated as `uid`, or None if it was refused.'''
    peer = await RawPeer.connect(addr)
    with trio.fail_after(5):
        aid = await peer.authenticate(secret, *uid)
    if aid is None:
        await peer.aclose()
        return None
    return peer


def msg_types(msgs: list) -> list[str]:
    return [msg['msg_type'] for msg in msgs]


def assert_told_nothing(msgs: list) -> None:
    '''
    All an actor may say to an unauthenticated peer is its own challenge,
    sent on accept (a reset of the connection can discard even that).
    '''
    assert msg_types(msgs) in ([], ['AuthChallenge'])


@acm
async def tree_with_target(reg_addr, start_method, **root_kwargs):
    '''
    This process as root and registrar, with a daemon child `target`:
    yields the child's portal and the address it accepts connections on.
    '''
    async with tractor.open_nursery(
        **nursery_kwargs(reg_addr, start_method),
        **root_kwargs,
    ) as an:
        portal = await an.start_actor('target', enable_modules=[__name__])
        yield portal, tuple(await portal.run(accept_addr))
        await portal.cancel_actor()


# ---- unauthenticated peers are dropped, nothing they sent runs ----

def test_wrong_secret_peer_is_dropped_and_its_msgs_never_run(
    reg_addr,
    start_method,
    tpt_proto,
):
    async def main():
        with trio.fail_after(25):
            async with tree_with_target(reg_addr, start_method) as (portal, addr):
                assert await authenticate(addr, WRONG_SECRET) is None

                intruder = ('intruder', 'x')
                cancel = start(intruder, 'self', 'cancel')
                assert_told_nothing(await replies_until_dropped(
                    addr, forged_session(intruder, cancel),
                ))
                # nor does the protocol of before authentication (`Aid` first)
                assert_told_nothing(await replies_until_dropped(
                    addr, unauthenticated_session(intruder, cancel),
                ))

                assert await portal.run(echo, value='alive') == 'alive'

                # control: the same `Start` from an authenticated peer is
                # obeyed, the actor cancels itself
                peer = await authenticate(addr, current_secret().value, intruder)
                assert peer is not None
                await peer.send_msg(cancel)
                with trio.fail_after(5):
                    replies = await peer.wait_closed()
                await peer.aclose()
                assert msg_types(replies)[:2] == ['StartAck', 'CancelAck']
                assert replies[1]['pld'] is True

    trio.run(main)


def test_registrar_tells_a_wrong_secret_peer_nothing(
    reg_addr,
    start_method,
    tpt_proto,
):
    async def main():
        with trio.fail_after(25):
            async with tree_with_target(reg_addr, start_method) as (_portal, addr):
                uid = ('snoop', 'x')
                lookup = start(uid, 'self', 'find_actor', name='target')
                # no `AuthProof`, so neither the registrar's `Aid` nor an answer
                assert_told_nothing(await replies_until_dropped(
                    reg_addr, forged_session(uid, lookup),
                ))
                assert_told_nothing(await replies_until_dropped(
                    reg_addr, unauthenticated_session(uid, lookup),
                ))
                assert await authenticate(reg_addr, WRONG_SECRET) is None

                # control: with the secret the same lookup returns the address
                peer = await authenticate(reg_addr, current_secret().value, uid)
                assert peer is not None
                await peer.send_msg(lookup)
                with trio.fail_after(5):
                    replies = [await peer.recv_msg() for _ in range(2)]
                await peer.aclose()
                assert msg_types(replies) == ['StartAck', 'Return']
                assert addr in [tuple(found) for found in replies[1]['pld']]

    trio.run(main)


# ---- a real tractor client holding another secret ----

def test_channel_with_wrong_secret_fails_naming_the_address(
    reg_addr,
    start_method,
    tpt_proto,
):
    async def main():
        with trio.fail_after(20):
            async with tree_with_target(reg_addr, start_method) as (portal, addr):
                chan = await Channel.from_addr(addr)
                try:
                    with pytest.raises(AuthenticationFailed) as failed:
                        await chan._do_handshake(
                            tractor.current_actor().aid,
                            secret=Secret(WRONG_SECRET),
                        )
                finally:
                    await chan.aclose()
                assert repr(addr) in str(failed.value)
                assert 'secret' in str(failed.value)
                assert await portal.run(echo, value=1) == 1

    trio.run(main)


def root_script(addr, tpt_proto: str, body: str) -> str:
    '''A `python -c` program running `body` in a root registering at `addr`.'''
    return (
        'import trio, tractor\n'
        'async def main():\n'
        '    async with tractor.open_root_actor(\n'
        f'        registry_addrs=[{addr!r}], enable_transports=[{tpt_proto!r}],\n'
        '    ):\n'
        f'        {body}\n'
        'trio.run(main)\n'
    )


@acm
async def foreign_registrar(addr, tpt_proto: str, secret: str):
    '''A registrar of another tree (its own process) listening on `addr`.'''
    code = root_script(
        addr, tpt_proto, 'print("ready", flush=True); await trio.sleep_forever()',
    )
    async with trio.open_nursery() as tn:
        proc = await tn.start(partial(
            trio.run_process,
            [sys.executable, '-c', code],
            env=dict(os.environ, **{SECRET_ENV_VAR: secret}),
            cwd=repodir(),
            stdout=subprocess.PIPE,
            check=False,
        ))
        assert (await proc.stdout.receive_some(64)).startswith(b'ready')
        try:
            yield
        finally:
            # like a user's ctrl-c: it tears down and unlinks its UDS socket
            proc.send_signal(signal.SIGINT)
            with trio.move_on_after(5):
                await proc.wait()
            tn.cancel_scope.cancel()


def test_find_actor_at_a_registrar_of_another_secret_fails(
    reg_addr,
    start_method,
    tpt_proto,
):
    async def main():
        with trio.fail_after(25):
            async with tree_with_target(reg_addr, start_method) as (_portal, _addr):
                other_reg = get_rando_addr(tpt_proto)
                async with foreign_registrar(other_reg, tpt_proto, 'some-other-tree'):
                    with pytest.raises(AuthenticationFailed) as failed:
                        async with tractor.find_actor(
                            'target', registry_addrs=[other_reg],
                        ):
                            pass
                    assert repr(tuple(other_reg)) in str(failed.value)

                    with pytest.raises(AuthenticationFailed):
                        async with tractor.wait_for_actor(
                            'target', registry_addr=other_reg,
                        ):
                            pass
                    with pytest.raises(AuthenticationFailed):
                        async with tractor.get_registry(other_reg):
                            pass

                # control: our own registrar answers the same lookup
                async with tractor.find_actor(
                    'target', registry_addrs=[reg_addr],
                ) as portal:
                    assert await portal.run(echo, value='found') == 'found'

    trio.run(main)


def test_root_with_another_secret_is_told_why_it_cannot_join(
    reg_addr,
    tpt_proto,
):
    join = root_script(reg_addr, tpt_proto, 'pass')

    async def main():
        with trio.fail_after(25):
            async with tractor.open_root_actor(registry_addrs=[reg_addr]):
                env = dict(os.environ, **{SECRET_ENV_VAR: 'some-other-tree'})
                proc = await trio.run_process(
                    [sys.executable, '-c', join],
                    env=env,
                    cwd=repodir(),
                    capture_stderr=True,
                    check=False,
                )
        assert proc.returncode != 0
        error = proc.stderr.decode().strip().splitlines()[-1]
        assert error.split(':', 1)[0].endswith('AuthenticationFailed')
        assert repr(tuple(reg_addr)) in error
        assert 'secret' in error

    trio.run(main)


# ---- the secret never shows where other users can read it ----

def _proc_text(pid: int) -> bytes:
    '''`/proc/<pid>/cmdline` and `environ` (world- or same-user readable).'''
    text = b''
    for name in ('cmdline', 'environ'):
        try:
            text += Path(f'/proc/{pid}/{name}').read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return text


def test_secret_never_on_a_childs_cmdline_or_environ(
    reg_addr,
    start_method,
    tpt_proto,
    monkeypatch,
):
    secret = f'test-security-{os.urandom(12).hex()}'
    marker = f'test-security-marker-{os.urandom(6).hex()}'
    monkeypatch.delenv(SECRET_ENV_VAR, raising=False)
    # control: an env var the user did set does reach exec'd children
    monkeypatch.setenv('TRACTOR_TEST_MARKER', marker)

    async def main():
        with trio.fail_after(25):
            async with tree_with_target(
                reg_addr, start_method, secret=secret,
            ) as (portal, addr):
                child_pid = await portal.run(pid)
                # the tree works, so the child proves the same secret
                assert await portal.run(tree_secret_digest) == (
                    secret_digest(Secret(secret.encode()))
                )
                assert not await portal.run(environ_holds, value=secret)

                everyone = {child_pid, *(
                    proc.pid for proc in psutil.Process().children(recursive=True)
                )}
                for some_pid in everyone:
                    assert secret.encode() not in _proc_text(some_pid), some_pid
                if start_method in ('trio', 'mp_spawn'):
                    assert marker.encode() in _proc_text(child_pid)

                # a peer of another root secret can not talk to the child
                assert await authenticate(addr, b'another-root-secret') is None
                peer = await authenticate(addr, secret.encode())
                assert peer is not None
                await peer.aclose()

    trio.run(main)


# ---- claiming a child's uid while it is being spawned ----

async def new_child_uid(an, known: set) -> tuple[str, str]:
    '''The uid of the child `an` is spawning (known before it starts).'''
    while not (new := set(an._portal_events) - known):
        await trio.sleep(0)
    (uid,) = new
    return uid


async def assert_hijack_refused(parent_addr, uid: tuple[str, str]) -> None:
    assert await authenticate(parent_addr, WRONG_SECRET, uid) is None
    assert_told_nothing(await replies_until_dropped(
        parent_addr, unauthenticated_session(uid),
    ))


def test_spawning_childs_uid_can_not_be_hijacked(
    reg_addr,
    start_method,
    tpt_proto,
):
    async def main():
        with trio.fail_after(25):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                parent_addr = tuple(tractor.current_actor().accept_addrs[0])
                spawned = {}

                async def spawn():
                    spawned['portal'] = await an.start_actor(
                        'victim', enable_modules=[__name__],
                    )

                known = set(an._portal_events)
                async with trio.open_nursery() as tn:
                    tn.start_soon(spawn)
                    uid = await new_child_uid(an, known)
                    child_connected = an._portal_events[uid]
                    refused_while_unclaimed = 0
                    while not child_connected.is_set():
                        await assert_hijack_refused(parent_addr, uid)
                        if not child_connected.is_set():
                            refused_while_unclaimed += 1
                        await trio.sleep(0.01)

                assert refused_while_unclaimed >= 1
                portal = spawned['portal']
                assert portal.chan.aid.uid == uid
                assert await portal.run(echo, value='the real one') == 'the real one'
                # and once it is there, its uid can not be claimed either
                await assert_hijack_refused(parent_addr, uid)
                assert await portal.run(echo, value=2) == 2
                await portal.cancel_actor()

    trio.run(main)


# ---- pre-authentication memory bound ----

def _peak_rss(pid: int) -> int:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
    raise LookupError(f'no VmHWM for pid {pid}')


def _reset_peak_rss(pid: int) -> None:
    # Linux >= 4.0: restart the high-water mark from the current RSS
    Path(f'/proc/{pid}/clear_refs').write_text('5')


async def push_oversized_frame(addr, chunk: bytes, max_bytes: int) -> None:
    '''
    Announce a 64 MiB frame before any handshake and stream up to
    `max_bytes` of its body until the actor drops us.
    '''
    peer = await RawPeer.connect(addr)
    sent = 0
    try:
        await peer.send_raw(struct.pack('<I', 64 * 2**20))
        while sent < max_bytes:
            await peer.send_raw(chunk)
            sent += len(chunk)
        # all taken: the actor must still drop us without the rest
        await peer.wait_closed()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await peer.aclose()


def test_preauth_oversized_frames_are_dropped_without_buffering(
    reg_addr,
    start_method,
    tpt_proto,
):
    '''
    With the subint backend the target runs inside this process, so its
    RSS is this whole process's: a superset, the bound still holds.
    '''
    async def main():
        with trio.fail_after(25):
            async with tree_with_target(reg_addr, start_method) as (portal, addr):
                target_pid = await portal.run(pid)
                target = psutil.Process(target_pid)
                rss_before = target.memory_info().rss
                _reset_peak_rss(target_pid)

                # were the body buffered, 8 x 8 MiB would show in its RSS
                chunk = b'\0' * 2**20
                with trio.move_on_after(5) as attack:
                    async with trio.open_nursery() as tn:
                        for _ in range(8):
                            tn.start_soon(push_oversized_frame, addr, chunk, 8 * 2**20)

                assert _peak_rss(target_pid) - rss_before < 20 * 2**20
                assert target.memory_info().rss - rss_before < 20 * 2**20
                assert not attack.cancelled_caught, 'not dropped within 5 s'
                assert await portal.run(echo, value='ok') == 'ok'

    trio.run(main)


def with_nested_field(msg: dict, nested: bytes) -> bytes:
    '''`msg` framed with one more field, `extra`, holding `nested` as is.'''
    body = bytes([0x80 | (len(msg) + 1)])
    for key, value in msg.items():
        body += encode(key) + encode(value)
    return frame(body + encode('extra') + nested)


def test_preauth_deeply_nested_frames_are_dropped(
    reg_addr,
    start_method,
    tpt_proto,
):
    nested = b'\x91' * 3000 + b'\xc0'
    bare = frame(nested)
    # in a field the decoders skip: a challenge that is otherwise fine,
    # then a proof carrying it too (and a MAC of no secret)
    proof = {
        'msg_type': 'AuthProof',
        'aid': msgspec.Raw(encode(aid_dict('nested'))),
        'mac': os.urandom(32),
    }
    in_skipped_fields = (
        with_nested_field(challenge(), nested) + with_nested_field(proof, nested)
    )
    assert len(bare) < 4096 and len(in_skipped_fields) < 2 * 4096

    async def main():
        with trio.fail_after(25):
            async with tree_with_target(reg_addr, start_method) as (portal, addr):
                root_addr = tuple(tractor.current_actor().accept_addrs[0])
                for target in (addr, root_addr):
                    for data in (bare, in_skipped_fields):
                        assert_told_nothing(await replies_until_dropped(target, data))

                    peer = await authenticate(target, current_secret().value)
                    assert peer is not None, f'{target} stopped serving'
                    await peer.aclose()
                assert await portal.run(echo, value='ok') == 'ok'

    trio.run(main)


# ---- a client bounds its handshake with a listener too ----

@acm
async def fake_listener(tpt_proto: str, greeting: bytes = b''):
    '''A listener that sends `greeting` to whoever connects, then nothing.'''
    if tpt_proto == 'tcp':
        listeners = await trio.open_tcp_listeners(0, host='127.0.0.1')
        listener = listeners[0]
        addr = tuple(listener.socket.getsockname()[:2])
    else:
        sockdir = tempfile.mkdtemp(prefix='trsec-')
        sock = trio.socket.socket(trio.socket.AF_UNIX)
        await sock.bind(os.path.join(sockdir, 'fake.sock'))
        sock.listen()
        listener = trio.SocketListener(sock)
        addr = (sockdir, 'fake.sock')

    accepted = []

    async def accept_forever():
        while True:
            stream = await listener.accept()
            accepted.append(stream)
            await stream.send_all(greeting)

    try:
        async with trio.open_nursery() as tn:
            tn.start_soon(accept_forever)
            yield addr
            tn.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for stream in accepted:
                await stream.aclose()
            await listener.aclose()
        if tpt_proto == 'uds':
            os.unlink(os.path.join(*addr))
            os.rmdir(addr[0])


def test_handshake_with_a_silent_listener_times_out(
    reg_addr,
    tpt_proto,
    monkeypatch,
):
    timeout = 0.5
    monkeypatch.setattr(_chan, 'HANDSHAKE_TIMEOUT', timeout)

    async def main():
        with trio.fail_after(15):
            async with (
                tractor.open_root_actor(registry_addrs=[reg_addr]),
                fake_listener(tpt_proto) as addr,
            ):
                began = trio.current_time()
                with pytest.raises(HandshakeFailed) as failed:
                    async with tractor.find_actor('anyone', registry_addrs=[addr]):
                        pass
                took = trio.current_time() - began
                assert timeout <= took < timeout + 1.5
                assert repr(addr) in str(failed.value)
                assert 'handshake' in str(failed.value)
                # silence is no evidence of another secret
                assert not isinstance(failed.value, AuthenticationFailed)

                chan = await Channel.from_addr(addr)
                began = trio.current_time()
                with pytest.raises(HandshakeFailed) as failed:
                    await chan._do_handshake(tractor.current_actor().aid, timeout=0.2)
                await chan.aclose()
                assert 0.2 <= trio.current_time() - began < 1.2
                assert repr(addr) in str(failed.value)

    trio.run(main)


@pytest.mark.parametrize(
    'greeting',
    [
        struct.pack('<I', 2**31) + b'junk',
        frame(b'\x91' * 3000 + b'\xc0'),
    ],
    ids=['huge-prefix', 'deeply-nested'],
)
def test_handshake_with_a_garbage_listener_fails_at_once(
    reg_addr,
    tpt_proto,
    greeting,
):
    async def main():
        with trio.fail_after(15):
            async with (
                tractor.open_root_actor(registry_addrs=[reg_addr]),
                fake_listener(tpt_proto, greeting) as addr,
            ):
                chan = await Channel.from_addr(addr)
                began = trio.current_time()
                with pytest.raises(HandshakeFailed) as failed:
                    await chan._do_handshake(tractor.current_actor().aid)
                await chan.aclose()
                # long before the handshake deadline
                assert trio.current_time() - began < 2
                assert repr(addr) in str(failed.value)
                assert not isinstance(failed.value, AuthenticationFailed)

    trio.run(main)


# ---- where the secret comes from ----

PRINT_SECRET = (
    'import sys\n'
    'from tractor.ipc._auth import resolve_secret\n'
    'sys.stdout.buffer.write(resolve_secret(*sys.argv[1:]).value)\n'
)


@pytest.fixture
def user_dirs(tmp_path, monkeypatch) -> Path:
    '''A fresh HOME and XDG_CONFIG_HOME, and no secret in the env.'''
    for name in ('home', 'config'):
        (tmp_path / name).mkdir()
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('XDG_CONFIG_HOME', str(tmp_path / 'config'))
    monkeypatch.delenv(SECRET_ENV_VAR, raising=False)
    return tmp_path


async def resolve_in_subprocess(*explicit: str, **env: str) -> bytes:
    '''The secret a fresh process resolves (raises on failure, with stderr).'''
    proc = await trio.run_process(
        [sys.executable, '-c', PRINT_SECRET, *explicit],
        env=dict(os.environ, **env),
        cwd=repodir(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr.decode())
    return proc.stdout


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize('config_home', ['xdg', 'home'])
def test_secret_file_is_created_private_and_shared(user_dirs, config_home, monkeypatch):
    if config_home == 'home':
        monkeypatch.delenv('XDG_CONFIG_HOME')
        secret_file = user_dirs / 'home' / '.config' / 'tractor' / 'secret'
    else:
        secret_file = user_dirs / 'config' / 'tractor' / 'secret'

    async def main():
        with trio.fail_after(25):
            secrets = []

            async def resolve():
                secrets.append(await resolve_in_subprocess())

            # all at once: racing creators must still agree on one secret
            async with trio.open_nursery() as tn:
                for _ in range(4):
                    tn.start_soon(resolve)
            return secrets

    secrets = trio.run(main)
    assert len(set(secrets)) == 1 and len(secrets[0]) >= 32
    assert secret_file.read_bytes().strip() == secrets[0]
    assert _mode(secret_file) == 0o600
    assert _mode(secret_file.parent) == 0o700
    assert os.listdir(secret_file.parent) == ['secret']


@pytest.mark.parametrize('mode', [0o640, 0o604], ids=oct)
def test_secret_file_readable_by_others_is_refused(user_dirs, mode):
    async def main():
        with trio.fail_after(25):
            await resolve_in_subprocess()
            secret_file = user_dirs / 'config' / 'tractor' / 'secret'
            secret_file.chmod(mode)
            with pytest.raises(RuntimeError) as failed:
                await resolve_in_subprocess()
            error = str(failed.value).strip().splitlines()[-1]
            assert error.startswith('PermissionError')
            assert str(secret_file) in error
            assert 'chmod 600' in error

    trio.run(main)


def test_secret_precedence_explicit_then_env_then_file(user_dirs):
    async def main():
        with trio.fail_after(25):
            from_file = await resolve_in_subprocess()
            from_env = await resolve_in_subprocess(**{SECRET_ENV_VAR: 'from-env'})
            explicit = await resolve_in_subprocess(
                'explicit', **{SECRET_ENV_VAR: 'from-env'},
            )
        return from_file, from_env, explicit

    from_file, from_env, explicit = trio.run(main)
    assert from_file == (user_dirs / 'config' / 'tractor' / 'secret').read_bytes().strip()
    assert from_env == b'from-env'
    assert explicit == b'explicit'


def test_secret_repr_hides_value():
    secret = Secret(b'hunter2-do-not-show')
    for shown in (repr(secret), str(secret), f'{secret}', repr({'s': [secret]})):
        assert b'hunter2' not in shown.encode()


def test_default_tree_shares_the_per_user_secret_file(
    user_dirs,
    reg_addr,
    start_method,
    tpt_proto,
):
    async def main():
        with trio.fail_after(25):
            async with tree_with_target(reg_addr, start_method) as (portal, _addr):
                return await portal.run(tree_secret_digest)

    child_digest = trio.run(main)
    secret_file = user_dirs / 'config' / 'tractor' / 'secret'
    assert _mode(secret_file) == 0o600
    assert child_digest == secret_digest(Secret(secret_file.read_bytes().strip()))


# ---- a cap on connections that have not authenticated yet ----

async def squat(addr) -> RawPeer:
    '''A connection that never authenticates, once the actor counts it as pending.'''
    peer = await RawPeer.connect(addr)
    # the actor sends its challenge once it waits for our answer
    with trio.fail_after(5):
        assert (await peer.recv_msg())['msg_type'] == 'AuthChallenge'
    return peer


async def dropped(peers: list[RawPeer], within: float) -> list[bool]:
    '''Which of `peers` the actor closes within `within` seconds.'''
    closed = [False] * len(peers)

    async def watch(index: int, peer: RawPeer) -> None:
        with trio.move_on_after(within):
            await peer.wait_closed()
            closed[index] = True

    async with trio.open_nursery() as tn:
        for index, peer in enumerate(peers):
            tn.start_soon(watch, index, peer)
    return closed


def test_pending_handshakes_are_capped_by_evicting_the_oldest(
    reg_addr,
    start_method,
    tpt_proto,
):
    cap = _server.MAX_PENDING_HANDSHAKES
    newcomers = 4

    async def main():
        with trio.fail_after(25):
            async with tree_with_target(reg_addr, start_method) as (portal, addr):
                squatters = []
                try:
                    for _ in range(cap + newcomers):
                        squatters.append(await squat(addr))
                    assert await dropped(squatters, within=1) == (
                        [True] * newcomers + [False] * cap
                    )

                    # squatters lock out neither a new client nor the
                    # authenticated peers
                    async with tractor.find_actor(
                        'target', registry_addrs=[reg_addr],
                    ) as found:
                        assert await found.run(echo, value='in') == 'in'
                    assert await portal.run(echo, value='busy') == 'busy'
                finally:
                    for peer in squatters:
                        await peer.aclose()

    trio.run(main)

