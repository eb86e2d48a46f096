'''
One bad message never takes an actor down, the registrar only lets an
actor speak for itself, and a reaped child leaves no socket file behind.

- an RPC argument nested too deeply to decode: the caller gets a clear
  `MsgTypeError`, the callee keeps serving;
- malformed runtime requests (`_cancel_task` without a proper `cid`) and
  requests whose fields have the wrong types are refused with an error
  to their sender, nothing else happens;
- `register_actor`/`unregister_actor` for another actor's uid are refused;
  `delete_addr` keeps an address something still answers on;
- a SIGKILLed child's UDS socket file is removed by its parent;
- a daemon root asked to cancel by a peer ends its body and exits.

'''
import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest
import trio
import tractor
from tractor._exceptions import (
    ActorFailure,
    MsgTypeError,
)
from tractor._testing import nursery_kwargs
from tractor._testing.raw_peer import RawPeer
from tractor.ipc._auth import current_secret


# ---- functions run inside child actors ----

async def echo(value):
    return value


async def accept_addrs() -> list:
    return [list(addr) for addr in tractor.current_actor().accept_addrs]


async def get_pid() -> int:
    return os.getpid()


async def my_uid() -> list:
    return list(tractor.current_actor().aid.uid)


async def call_registrar(method: str, **kwargs):
    '''Call a registrar method as this actor (a peer of the registrar).'''
    async with tractor.get_registry() as reg:
        return await reg.run_from_ns('self', method, **kwargs)


# ---- helpers ----

def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def remote_type(err: BaseException) -> type|None:
    return getattr(err, 'boxed_type', None)


async def start_echo_daemon(an, name: str = 'callee') -> tractor.Portal:
    return await an.start_actor(name, enable_modules=[__name__])


# ---- point 3: one bad message ----

def test_too_deep_argument_is_refused_and_callee_serves(reg_addr, start_method):
    '''
    An argument the callee cannot decode (nested far past its stack) is a
    clear error for the caller, not a dead callee nor a hung call.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await start_echo_daemon(an)
                shallow = nested(50)
                assert await portal.run(echo, value=shallow) == shallow

                limit = sys.getrecursionlimit()
                sys.setrecursionlimit(max(limit, 100_000))
                try:
                    with pytest.raises(MsgTypeError) as info:
                        await portal.run(echo, value=nested(40_000))
                finally:
                    sys.setrecursionlimit(limit)
                assert 'nested too deeply' in str(info.value)
                assert 'Start' in str(info.value)

                assert await portal.run(echo, value='still serving') == 'still serving'
                await portal.cancel_actor()

    trio.run(main)


@pytest.mark.parametrize(
    'kwargs',
    [{}, {'cid': 5}, {'cid': None}, {'cid': ['x']}, {'cid': 'x', 'extra': 1}],
    ids=['missing', 'int', 'none', 'list', 'extra-arg'],
)
def test_malformed_cancel_task_request_is_boxed(reg_addr, start_method, kwargs):
    '''
    `_cancel_task` with a missing or malformed `cid` is refused with a
    boxed `TypeError`, acks nothing and cancels nothing.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await start_echo_daemon(an)
                with pytest.raises(tractor.RemoteActorError) as info:
                    await portal.run_from_ns('self', '_cancel_task', **kwargs)
                assert remote_type(info.value) is TypeError
                assert 'cid' in str(info.value) or 'extra' in str(info.value)
                assert await portal.run(echo, value=1) == 1
                await portal.cancel_actor()

    trio.run(main)


def test_raw_peer_bad_requests_get_replies(reg_addr, start_method, tpt_proto):
    '''
    An authenticated peer speaking the raw protocol: a `Start` whose fields
    have the wrong types, one naming no function, and one claiming another
    actor's uid each get an `Error` back under their `cid`; the actor keeps
    serving that very connection.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await start_echo_daemon(an)
                addr = (await portal.run(accept_addrs))[0]
                peer = await RawPeer.connect(addr)
                me = ('raw', str(uuid.uuid4()))
                assert await peer.authenticate(current_secret().value, *me)

                def start(cid: str, **fields) -> dict:
                    return {
                        'msg_type': 'Start', 'cid': cid, 'ns': __name__,
                        'func': 'echo', 'kwargs': {'value': cid},
                        'uid': list(me), 'pld_spec': 'typing.Any', **fields,
                    }

                bad = {
                    'wrong-kwargs-type': start('wrong-kwargs-type', kwargs=5),
                    'wrong-uid-type': start('wrong-uid-type', uid='nobody'),
                    'no-such-func': start('no-such-func', func='nope'),
                    'not-enabled': start('not-enabled', ns='os'),
                    'other-uid': start('other-uid', uid=['x', 'y']),
                }
                for msg in bad.values():
                    await peer.send_msg(msg)
                errors = {}
                while len(errors) < len(bad):
                    reply = await peer.recv_msg()
                    assert reply is not None, 'the actor dropped us'
                    assert reply['msg_type'] == 'Error', reply
                    errors[reply['cid']] = reply
                assert set(errors) == set(bad)
                assert errors['wrong-kwargs-type']['boxed_type_str'] == 'MsgTypeError'
                assert errors['not-enabled']['boxed_type_str'] == 'ModuleNotExposed'

                # the same connection still works for a good request
                await peer.send_msg(start('good'))
                replies = [await peer.recv_msg(), await peer.recv_msg()]
                assert [r['msg_type'] for r in replies] == ['StartAck', 'Return']
                assert replies[1]['pld'] == 'good'
                await peer.aclose()

                assert await portal.run(echo, value='ok') == 'ok'
                await portal.cancel_actor()

    trio.run(main)


# ---- point 7: the registrar ----

def test_registrar_refuses_speaking_for_others(reg_addr, start_method):
    '''
    A peer can not register, or unregister, another actor's uid, nor
    delete an address that still accepts connections (`delete_addr` is
    for addresses a caller found dead): the other actor stays findable.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                victim = await start_echo_daemon(an, 'victim')
                mallory = await start_echo_daemon(an, 'mallory')
                victim_uid = await victim.run(my_uid)
                victim_addr = (await victim.run(accept_addrs))[0]
                mallory_addr = (await mallory.run(accept_addrs))[0]

                with pytest.raises(tractor.RemoteActorError) as info:
                    await mallory.run(
                        call_registrar, method='unregister_actor', uid=victim_uid,
                    )
                assert 'PermissionError' in str(info.value)

                with pytest.raises(tractor.RemoteActorError) as info:
                    await mallory.run(
                        call_registrar, method='register_actor',
                        uid=victim_uid, addr=mallory_addr,
                    )
                assert 'PermissionError' in str(info.value)

                deleted = await mallory.run(
                    call_registrar, method='delete_addr', addr=victim_addr,
                )
                assert deleted is None

                async with tractor.find_actor('victim') as found:
                    assert found is not None
                    assert tuple(found.chan.aid.uid) == tuple(victim_uid)
                    assert tuple(found.chan.raddr.unwrap()) == tuple(victim_addr)

                # speaking for itself is fine
                mallory_uid = await mallory.run(my_uid)
                await mallory.run(
                    call_registrar, method='unregister_actor', uid=mallory_uid,
                )
                async with tractor.find_actor('mallory') as found:
                    assert found is None
                await an.cancel()

    trio.run(main)


# ---- point 6: socket files of reaped children ----

@pytest.mark.skipon_spawn_backend(
    'subint',
    reason='a sub-interpreter actor can not be SIGKILLed apart from its parent',
)
def test_sigkilled_childs_socket_file_is_removed(reg_addr, start_method, tpt_proto):
    '''A child killed before it could unlink its socket: the parent does.'''
    if tpt_proto != 'uds':
        pytest.skip('socket files only exist with the uds transport')

    async def main():
        with trio.fail_after(20):
            # the death is the nursery's error once noticed (waited for
            # here: cancelling the nursery first would race it)
            with pytest.raises(ActorFailure, match='killed by SIGKILL'):
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    portal = await start_echo_daemon(an, 'victim')
                    pid = await portal.run(get_pid)
                    sockdir, filename = (await portal.run(accept_addrs))[0]
                    sockpath = os.path.join(sockdir, filename)
                    assert filename.endswith(f'@{pid}.sock')
                    assert os.path.exists(sockpath)
                    os.kill(pid, signal.SIGKILL)
                    await trio.sleep_forever()
            assert not os.path.exists(sockpath)

    trio.run(main)


# ---- a daemon root cancelled by a peer ----

DAEMON_SCRIPT = textwrap.dedent('''
    import sys
    import trio
    import tractor

    proto, first, second = sys.argv[1:]
    reg_addr = (first, int(second)) if proto == 'tcp' else (first, second)

    async def main():
        async with tractor.open_root_actor(
            name='daemon',
            registry_addrs=[reg_addr],
            enable_transports=[proto],
        ):
            print('UP', flush=True)
            await trio.sleep_forever()
        print('EXITED', flush=True)

    trio.run(main)
''')


def test_daemon_root_exits_when_cancelled_by_a_peer(reg_addr, tpt_proto):
    '''
    A root serving until cancelled (what `run_daemon()` does): a peer's
    `cancel_actor()` ends the root's body and the program exits cleanly.
    '''
    proc = subprocess.Popen(
        [sys.executable, '-c', DAEMON_SCRIPT, tpt_proto, *map(str, reg_addr)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    async def main():
        with trio.fail_after(20):
            line = await trio.to_thread.run_sync(
                proc.stdout.readline, abandon_on_cancel=True,
            )
            assert line.strip() == 'UP', line
            async with tractor.open_root_actor(
                registry_addrs=[reg_addr],
                enable_transports=[tpt_proto],
            ):
                async with tractor.get_registry() as portal:
                    assert portal.chan.aid.name == 'daemon'
                    await portal.cancel_actor()

    try:
        trio.run(main)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert out.strip() == 'EXITED', (out, err[-3000:])
