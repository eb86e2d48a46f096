'''
The `subint` spawn backend itself: actors as sub-interpreters of this
process, the interpreter-config probe, resource cleanup, and the hang
classes of teardown (a child whose channel is dead, one that never
checkpoints, one that cannot be interrupted at all, interpreter
destruction racing threads, the signal wake-up pipe filling while a
child holds the GIL, cancellation mid-spawn, Ctrl-C).

Every test here runs only with `--spawn-backend subint` (on Python
3.13 they are skipped with the version reason, except the gate test).

'''
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import typing

import pytest
import trio
import tractor
from tractor.spawn import _spawn
from tractor._exceptions import ActorFailure
from tractor._testing import nursery_kwargs

_OTHER_BACKENDS = tuple(
    key for key in typing.get_args(_spawn.SpawnMethodKey) if key != 'subint'
)
pytestmark = pytest.mark.skipon_spawn_backend(
    *_OTHER_BACKENDS,
    reason='tests of the subint backend itself (run with --spawn-backend subint)',
)


# ---- functions run inside child actors ----

async def where() -> dict:
    import _interpreters
    iid = _interpreters.get_current()[0]
    return {
        'pid': os.getpid(),
        'interp': iid,
        'gil': _interpreters.get_config(iid).gil,
        'thread': threading.current_thread().name,
        'os_thread': threading.get_native_id(),
        'spawn_method': tractor.current_actor().spawn_method,
    }


async def sleep_forever():
    await trio.sleep_forever()


async def close_server_then_sleep():
    actor = tractor.current_actor()
    actor.ipc_server.cancel()
    await trio.sleep_forever()


async def kill_own_channels_then_shielded_sleep():
    # stop serving, drop the channel to the parent, and ignore every
    # cancellation: only the in-interpreter steps can end this actor
    actor = tractor.current_actor()
    actor.ipc_server.cancel()
    import socket
    actor._parent_chan.transport.stream.socket.shutdown(socket.SHUT_RDWR)
    with trio.CancelScope(shield=True):
        await trio.sleep_forever()


async def spin_forever():
    while True:
        pass


async def poll_event_forever():
    event = threading.Event()
    while True:
        event.wait(0.1)


async def block_in_c(secs: float):
    time.sleep(secs)


async def leave_threads_behind() -> str:
    # a cached trio worker (daemon), a plain daemon and a non-daemon
    # thread, all still alive when the actor is torn down
    await trio.to_thread.run_sync(time.sleep, 0.01)
    threading.Thread(target=time.sleep, args=(0.3,), daemon=True).start()
    threading.Thread(target=time.sleep, args=(0.3,)).start()
    return 'ok'


# ---- helpers ----

def subint_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith('subint[')]


def foreign_os_threads() -> int:
    '''OS threads of this process not known to the main interpreter.'''
    return len(os.listdir('/proc/self/task')) - threading.active_count()


def interps() -> list[int]:
    '''
    Interpreters of this process but the warm pool's spares (which are
    no actor's; `tests/test_subint_pool.py` checks those go with the root).
    '''
    import _interpreters
    from tractor.spawn import _subint_pool
    spares = set(_subint_pool.spare_ids())
    listed = [iid for iid, *_ in _interpreters.list_all()]
    spares |= set(_subint_pool.spare_ids())
    return [iid for iid in listed if iid not in spares]


async def wait_clean(baseline_foreign: int, timeout: float = 3) -> None:
    '''Wait until no actor thread, interpreter or foreign thread is left.'''
    with trio.move_on_after(timeout):
        while (
            subint_threads()
            or len(interps()) > 1
            or foreign_os_threads() > baseline_foreign
        ):
            await trio.sleep(0.02)
    assert not subint_threads()
    assert len(interps()) == 1, interps()
    assert foreign_os_threads() <= baseline_foreign


def only_actor_errors(err: BaseException) -> bool:
    if isinstance(err, BaseExceptionGroup):
        return all(only_actor_errors(sub) for sub in err.exceptions)
    return isinstance(err, (tractor.RemoteActorError, ActorFailure))


def handle_of(an, name: str):
    for _sub, handle, _portal in an._children.values():
        if handle.uid[0] == name:
            return handle
    raise LookupError(name)


# ---- tests ----

@pytest.mark.skipif(
    sys.version_info >= (3, 14),
    reason='the feature gate only bites before Python 3.14',
)
def test_gate_names_the_python_version(spawn_backend):
    with pytest.raises(RuntimeError, match=r'Python 3\.14'):
        _spawn.try_set_start_method('subint')

    async def main():
        async with tractor.open_nursery(start_method='subint'):
            pass

    with pytest.raises(RuntimeError, match=r'Python 3\.14'):
        trio.run(main)


def test_interp_config_probe_is_cached(start_method):
    from tractor.spawn import _subint
    kind, config = _subint.interp_config()
    assert kind in ('isolated', 'legacy')
    assert config.gil == ('own' if kind == 'isolated' else 'shared')
    started = time.perf_counter()
    assert _subint.interp_config() == (kind, config)
    assert time.perf_counter() - started < 0.01


def test_actor_is_a_subinterpreter(reg_addr, start_method):
    from tractor.spawn import _subint

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor('where', enable_modules=[__name__])
                facts = await portal.run(where)
                await portal.cancel_actor()
        return facts

    facts = trio.run(main)
    kind, _ = _subint.interp_config()
    assert facts['pid'] == os.getpid()
    assert facts['interp'] != 0
    assert facts['gil'] == ('own' if kind == 'isolated' else 'shared')
    assert facts['os_thread'] != threading.get_native_id()
    assert facts['spawn_method'] == 'subint'
    assert not subint_threads()
    assert interps() == [0]


def test_sequential_spawns_leave_nothing_behind(reg_addr, start_method):
    baseline = foreign_os_threads()

    async def main():
        with trio.fail_after(60):
            async with tractor.open_root_actor(**nursery_kwargs(reg_addr, start_method)):
                for i in range(8):
                    async with tractor.open_nursery() as an:
                        portal = await an.run_in_actor(where, name=f'seq_{i}')
                        facts = await portal.wait_for_result()
                        assert facts['interp'] != 0
                    await wait_clean(baseline)

    trio.run(main)


def test_same_named_children_coexist(reg_addr, start_method):
    '''
    Actors of one process share its pid: same-named siblings still get
    distinct addresses (UDS socket paths are per interpreter).
    '''
    async def main():
        with trio.fail_after(30):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portals = [
                    await an.start_actor('twin', enable_modules=[__name__])
                    for _ in range(3)
                ]
                facts = [await portal.run(where) for portal in portals]
                await an.cancel()
        assert len({f['interp'] for f in facts}) == 3

    trio.run(main)


def test_threads_left_by_a_child_are_reaped(reg_addr, start_method):
    '''
    Interpreter destruction racing threads still attached to it: the
    child's trio worker, daemon and non-daemon threads are joined
    (bounded) before the interpreter is destroyed; nothing leaks.
    '''
    baseline = foreign_os_threads()

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.run_in_actor(leave_threads_behind)
                handle = handle_of(an, 'leave_threads_behind')
                assert await portal.wait_for_result() == 'ok'
            assert handle.outcome == 'ok'
            assert handle.lingering == ()
            await wait_clean(baseline)

    trio.run(main)


@pytest.mark.parametrize(
    'child_fn',
    [close_server_then_sleep, kill_own_channels_then_shielded_sleep],
    ids=['closed-server', 'dead-channel-shielded'],
)
def test_unreachable_child_is_torn_down(reg_addr, start_method, child_fn):
    baseline = foreign_os_threads()

    async def main():
        with trio.fail_after(15):
            started = time.monotonic()
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor('unreachable', enable_modules=[__name__])
                handle = handle_of(an, 'unreachable')
                async with trio.open_nursery() as tn:
                    async def call():
                        try:
                            await portal.run(child_fn)
                        except Exception:
                            pass
                    tn.start_soon(call)
                    await trio.sleep(0.5)
                    started = time.monotonic()
                    await an.cancel()
                    tn.cancel_scope.cancel()
            elapsed = time.monotonic() - started
            assert not handle.alive(), handle.describe_exit()
            await wait_clean(baseline)
            return elapsed

    elapsed = trio.run(main)
    assert elapsed < 8


@pytest.mark.parametrize(
    'child_fn',
    [spin_forever, poll_event_forever],
    ids=['while-true-pass', 'event-wait-loop'],
)
def test_never_checkpointing_child_is_interrupted(reg_addr, start_method, child_fn):
    baseline = foreign_os_threads()

    async def main():
        with trio.fail_after(15):
            try:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    await an.run_in_actor(child_fn, name='busy')
                    handle = handle_of(an, 'busy')
                    # let it enter its loop
                    await trio.sleep(1)
                    started = time.monotonic()
                    await an.cancel()
            except BaseException as err:
                # the interrupt may surface as the child's (boxed) error
                assert only_actor_errors(err), err
            elapsed = time.monotonic() - started
        assert not handle.alive(), handle.describe_exit()
        await wait_clean(baseline)
        return elapsed

    assert trio.run(main) < 8


def test_uninterruptible_child_is_abandoned(reg_addr, start_method, monkeypatch):
    '''
    A child blocked in C cannot be stopped in-process: it is abandoned
    (logged, naming it) within the bound, and its thread destroys its
    interpreter by itself once the call returns.
    '''
    from tractor.spawn import _subint
    monkeypatch.setattr(_subint, 'TEARDOWN_BOUND', 0.6)
    baseline = foreign_os_threads()

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor('stuck', enable_modules=[__name__])
                handle = handle_of(an, 'stuck')
                assert handle.reap_grace == pytest.approx(0.2)
                async with trio.open_nursery() as tn:
                    async def call():
                        try:
                            await portal.run(block_in_c, secs=5)
                        except Exception:
                            pass
                    tn.start_soon(call)
                    await trio.sleep(0.5)
                    started = time.monotonic()
                    await an.cancel()
                    tn.cancel_scope.cancel()
            elapsed = time.monotonic() - started
            # abandoned, still blocked in `time.sleep()`
            assert handle.alive()
            assert 'left behind' in handle.describe_exit()
            # it cleans up after itself once unblocked
            while handle.alive():
                await trio.sleep(0.05)
            assert handle.outcome in ('interrupted', 'terminated'), handle.outcome
            await wait_clean(baseline)
            return elapsed

    elapsed = trio.run(main)
    assert elapsed < 5


def test_abandoned_child_fails_pending_calls_at_once(reg_addr, start_method, monkeypatch):
    '''
    Once a child blocked in C is abandoned, a call still waiting on it (from
    a task outside the actor nursery) fails at once with `ActorFailure`
    naming the child, instead of waiting for the C call to return.
    '''
    from tractor.spawn import _subint
    monkeypatch.setattr(_subint, 'TEARDOWN_BOUND', 0.6)
    baseline = foreign_os_threads()
    outcome: dict = {}

    async def main():
        with trio.fail_after(20):
            async with trio.open_nursery() as tn:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    portal = await an.start_actor('stuck', enable_modules=[__name__])
                    handle = handle_of(an, 'stuck')

                    async def call():
                        try:
                            await portal.run(block_in_c, secs=4)
                        except Exception as err:
                            outcome['err'] = err
                        outcome['at'] = time.monotonic()

                    tn.start_soon(call)
                    await trio.sleep(0.3)
                    await an.cancel()
                abandoned_at = time.monotonic()
            assert handle.alive(), 'expected the child to be abandoned'
            assert 'at' in outcome
            assert outcome['at'] - abandoned_at < 0.5
            err = outcome['err']
            assert isinstance(err, ActorFailure), repr(err)
            assert 'stuck' in str(err) and 'abandoned' in str(err)
            while handle.alive():
                await trio.sleep(0.05)
            await wait_clean(baseline)

    trio.run(main)


def test_wakeup_pipe_flood_while_child_holds_gil(reg_addr, start_method):
    '''
    With a child spinning on the shared GIL, flood the parent with
    signals (each writes to trio's wake-up fd) and cross-thread
    `run_sync_soon()` calls until its wake-up socket is full; the parent
    must stay responsive and still tear the child down.
    '''
    baseline = foreign_os_threads()

    async def main():
        with trio.fail_after(30):
            token = trio.lowlevel.current_trio_token()
            stop = threading.Event()

            def flood():
                while not stop.is_set():
                    for _ in range(200):
                        os.kill(os.getpid(), signal.SIGUSR1)
                        try:
                            token.run_sync_soon(lambda: None)
                        except trio.RunFinishedError:
                            return
                    time.sleep(0.001)

            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor('hog', enable_modules=[__name__])
                async with trio.open_nursery() as tn:
                    async def call():
                        try:
                            await portal.run(spin_forever)
                        except Exception:
                            pass
                    tn.start_soon(call)
                    flooder = threading.Thread(target=flood)
                    flooder.start()
                    try:
                        # the loop still gets around while flooded
                        for _ in range(20):
                            before = time.monotonic()
                            await trio.sleep(0.01)
                            assert time.monotonic() - before < 1
                        started = time.monotonic()
                        await an.cancel()
                        tn.cancel_scope.cancel()
                    finally:
                        stop.set()
                        flooder.join()
            elapsed = time.monotonic() - started
        await wait_clean(baseline)
        return elapsed

    # a python-level handler: every signal writes to trio's wake-up fd;
    # kept until late signals have surely landed
    prev = signal.signal(signal.SIGUSR1, lambda *_: None)
    try:
        assert trio.run(main) < 8
        time.sleep(0.2)
    finally:
        signal.signal(signal.SIGUSR1, prev)


@pytest.mark.parametrize('delay', [0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8])
def test_cancel_parent_mid_spawn(reg_addr, start_method, delay):
    baseline = foreign_os_threads()

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                with trio.move_on_after(delay):
                    await an.start_actor('midspawn', enable_modules=[__name__])
                    await trio.sleep_forever()
                await an.cancel()
        await wait_clean(baseline)

    trio.run(main)


MAIN_SCRIPT = textwrap.dedent('''
    import ast, sys
    import trio, tractor

    GREETING = 'from the parent script'

    async def greet(who):
        return f'hello {who} {GREETING} in {tractor.current_actor().name}'

    async def main(reg_addr, tpt_proto):
        async with tractor.open_nursery(
            registry_addrs=[reg_addr],
            enable_transports=[tpt_proto],
            start_method='subint',
        ) as an:
            portal = await an.run_in_actor(greet, name='ria', who='x')
            print(await portal.wait_for_result(), flush=True)
            portal = await an.start_actor('daemon', enable_modules=[__name__])
            print(await portal.run(greet, who='y'), flush=True)
            await portal.cancel_actor()

    if __name__ == '__main__':
        trio.run(main, ast.literal_eval(sys.argv[1]), sys.argv[2])
        print('MAIN-OK', flush=True)
''')


def test_functions_from_main_script(tmp_path, reg_addr, tpt_proto, start_method):
    script = tmp_path / 'subint_main.py'
    script.write_text(MAIN_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), repr(tuple(reg_addr)), tpt_proto],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'MAIN-OK' in proc.stdout
    assert 'hello x from the parent script in ria' in proc.stdout
    assert 'hello y from the parent script in daemon' in proc.stdout
    assert 'remaining subinterpreters' not in proc.stderr


SIGINT_SCRIPT = textwrap.dedent('''
    import ast, sys
    import trio, tractor

    async def sleep_forever():
        await trio.sleep_forever()

    async def spin_forever():
        while True:
            pass

    async def spawn_nested():
        async with tractor.open_nursery() as an:
            await an.run_in_actor(sleep_forever, name='grandchild')
            await trio.sleep_forever()

    async def main(reg_addr, tpt_proto, cpu_bound):
        async with tractor.open_nursery(
            registry_addrs=[reg_addr],
            enable_transports=[tpt_proto],
            start_method='subint',
        ) as an:
            await an.start_actor('daemon', enable_modules=[__name__])
            await an.run_in_actor(sleep_forever, name='sleeper')
            await an.run_in_actor(spawn_nested, name='spawner')
            for name in ('daemon', 'sleeper', 'spawner', 'grandchild'):
                async with tractor.wait_for_actor(name):
                    pass
            if cpu_bound:
                # (a spinning actor cannot answer a `wait_for_actor()`)
                await an.run_in_actor(spin_forever, name='spinner')
                await trio.sleep(0.5)
            print('READY', flush=True)
            await trio.sleep_forever()

    if __name__ == '__main__':
        try:
            trio.run(main, ast.literal_eval(sys.argv[1]), sys.argv[2], sys.argv[3] == '1')
        except KeyboardInterrupt:
            print('GOT-KBI', flush=True)
''')


@pytest.mark.parametrize('cpu_bound', [False, True], ids=['idle', 'cpu-bound-child'])
def test_sigint_tears_down_subint_tree(tmp_path, reg_addr, tpt_proto, start_method, cpu_bound):
    script = tmp_path / 'subint_sigint.py'
    script.write_text(SIGINT_SCRIPT)
    out = tmp_path / 'out.txt'
    err = tmp_path / 'err.txt'
    with out.open('w') as out_f, err.open('w') as err_f:
        proc = subprocess.Popen(
            [sys.executable, str(script), repr(tuple(reg_addr)), tpt_proto,
             '1' if cpu_bound else '0'],
            cwd=str(tmp_path), stdout=out_f, stderr=err_f,
        )
    try:
        deadline = time.monotonic() + 30
        while 'READY' not in out.read_text():
            assert proc.poll() is None, err.read_text()[-3000:]
            assert time.monotonic() < deadline, 'tree never became ready'
            time.sleep(0.05)
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail(f'root did not exit within 5 s of SIGINT\n{err.read_text()[-3000:]}')
        elapsed = time.monotonic() - sent
        stderr = err.read_text()
        assert 'GOT-KBI' in out.read_text(), stderr[-3000:]
        assert rc == 0, stderr[-3000:]
        assert elapsed < 5
        assert 'remaining subinterpreters' not in stderr
        assert 'abandoned' not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
