'''
Supervision and cancellation: one-cancels-all on child failure, error
aggregation, explicit and scope-driven cancellation, body errors, and a
child process killed mid-call.

'''
import os
import signal
import time

import psutil
import pytest
import trio
import tractor
from tractor._exceptions import RuntimeFailure
from tractor._testing import nursery_kwargs


# ---- functions run inside child actors ----

async def sleep_forever():
    await trio.sleep_forever()


async def get_pid() -> int:
    return os.getpid()


async def fail_with_assert(delay: float = 0):
    await trio.sleep(delay)
    assert 0, 'this child was built to fail'


async def fail_at(wall_time: float):
    # children started one after another fail at the same moment
    await trio.sleep(max(0, wall_time - time.time()))
    assert 0, 'this child was built to fail'


async def fail_with_value_error():
    raise ValueError('boom from a child')


async def echo(value):
    return value


# ---- helpers ----

def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def iter_leaves(err: BaseException):
    '''
    Yield the non-group exceptions inside a (possibly nested) group.

    '''
    if isinstance(err, BaseExceptionGroup):
        for sub in err.exceptions:
            yield from iter_leaves(sub)
    else:
        yield err


def pid_running(pid: int) -> bool:
    '''
    Alive and not merely a zombie waiting to be reaped.

    '''
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def park(portal: tractor.Portal, outcomes: list) -> None:
    '''
    Block in a remote `sleep_forever()`; record how the call ended if
    it ends with an error (the callee may be torn down under us).

    '''
    try:
        await portal.run(sleep_forever)
    except Exception as err:
        outcomes.append(err)
    else:
        outcomes.append('returned')


@pytest.mark.skipon_spawn_backend(
    'subint',
    reason='checks the process-level fact that the daemons exited',
)
def test_one_failing_child_cancels_daemons(reg_addr, start_method):
    '''
    Daemons busy in `sleep_forever()` RPCs are cancelled when a
    `run_in_actor()` sibling fails; the nursery raises that single
    error, bare.

    '''
    async def main():
        pids: list[int] = []
        outcomes: list = []
        with trio.fail_after(20):
            async with trio.open_nursery() as tn:
                start = time.monotonic()
                with pytest.raises(tractor.RemoteActorError) as excinfo:
                    async with tractor.open_nursery(
                        **nursery_kwargs(reg_addr, start_method),
                    ) as an:
                        for i in range(3):
                            portal = await an.start_actor(
                                f'parked_{i}',
                                enable_modules=[__name__],
                            )
                            pids.append(await portal.run(get_pid))
                            tn.start_soon(park, portal, outcomes)

                        await an.run_in_actor(
                            fail_with_assert,
                            name='failer',
                        )
                        spawned_at = time.monotonic()

                elapsed = time.monotonic() - spawned_at
                tn.cancel_scope.cancel()

            rae = excinfo.value
            assert rae.boxed_type is AssertionError
            assert rae.src_uid[0] == 'failer'
            assert 'this child was built to fail' in rae.tb_str

            # siblings were torn down, quickly
            assert an.cancel_called
            assert not an._children
            assert elapsed < 5, elapsed
            assert time.monotonic() - start < 15
            for pid in pids:
                assert not pid_alive(pid), pid

            # a parked call never "returned" normally
            assert 'returned' not in outcomes

    trio.run(main)


def test_multiple_failing_children_group(reg_addr, start_method):
    '''
    Several `run_in_actor()` children failing at the same moment: the
    first failure cancels the body and the others at once, yet every
    error that happened comes out of the nursery, as a group of boxes.

    '''
    async def main():
        with trio.fail_after(20):
            with pytest.raises(BaseExceptionGroup) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    # late enough for all three spawns, even on a busy box
                    fail_time = time.time() + 3
                    for i in range(3):
                        await an.run_in_actor(
                            fail_at,
                            wall_time=fail_time,
                            name=f'failer_{i}',
                        )
                    await trio.sleep_forever()

            eg = excinfo.value
            boxes = [
                exc for exc in iter_leaves(eg)
                if not isinstance(exc, trio.Cancelled)
            ]
            assert len(boxes) >= 2, eg
            names = set()
            for box in boxes:
                assert isinstance(box, tractor.RemoteActorError), box
                assert box.boxed_type is AssertionError
                names.add(box.src_uid[0])
            assert names <= {'failer_0', 'failer_1', 'failer_2'}
            assert len(names) == len(boxes)
            assert not an._children

    trio.run(main)


def test_cancel_actor_returns_true(reg_addr, start_method):
    '''
    `Portal.cancel_actor()` is acknowledged; with its only daemon gone
    the nursery exits by itself.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'to_cancel',
                    enable_modules=[__name__],
                )
                assert await portal.run(echo, value=1) == 1
                assert await portal.cancel_actor() is True

            # reaching here means the daemon process is gone: daemons
            # otherwise keep a nursery open forever.
            assert not an._children
            assert not an.cancel_called

    trio.run(main)


@pytest.mark.skipon_spawn_backend(
    'subint',
    reason='checks the process-level fact that the child pid is gone',
)
def test_cancel_actor_child_process_exits(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'to_cancel',
                    enable_modules=[__name__],
                )
                pid = await portal.run(get_pid)
                assert pid_alive(pid)
                assert await portal.cancel_actor() is True

                # the process exits soon after the ack (it stays a
                # zombie until the nursery reaps it at block exit)
                with trio.fail_after(5):
                    while pid_running(pid):
                        await trio.sleep(0.05)

            # reaped by the nursery
            assert not pid_alive(pid)
            assert not an._children

    trio.run(main)


def test_an_cancel_parked_children(reg_addr, start_method):
    '''
    `an.cancel()` stops children stuck in `sleep_forever()` (both
    `run_in_actor()` mains and a daemon's RPC task); cancelled
    children add no errors.

    '''
    async def main():
        outcomes: list = []
        with trio.fail_after(20):
            async with trio.open_nursery() as tn:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    for i in range(2):
                        await an.run_in_actor(
                            sleep_forever,
                            name=f'sleeper_{i}',
                        )
                    daemon = await an.start_actor(
                        'daemon',
                        enable_modules=[__name__],
                    )
                    assert await daemon.run(echo, value='up') == 'up'
                    tn.start_soon(park, daemon, outcomes)
                    await trio.sleep(0.2)

                    start = time.monotonic()
                    await an.cancel()
                    assert an.cancel_called

                elapsed = time.monotonic() - start
                tn.cancel_scope.cancel()

            assert elapsed < 4, elapsed
            assert not an._children
            assert not an.errors or all(
                isinstance(err, trio.Cancelled)
                for err in an.errors.values()
            )

    trio.run(main)


def test_move_on_after_cancels_children(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            an = None
            with trio.move_on_after(2) as cs:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    await an.run_in_actor(sleep_forever, name='sleeper')
                    await an.start_actor(
                        'idle_daemon',
                        enable_modules=[__name__],
                    )
                    await trio.sleep_forever()

            expired_at = cs.deadline
            elapsed = trio.current_time() - expired_at

            assert cs.cancelled_caught
            assert an is not None
            assert an.cancel_called
            assert not an._children
            # teardown after the deadline is quick
            assert elapsed < 4, elapsed

    trio.run(main)


def test_outer_cancel_scope_cancels_children(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            an = None
            with trio.CancelScope() as cs:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    portal = await an.start_actor(
                        'busy_daemon',
                        enable_modules=[__name__],
                    )
                    assert await portal.run(echo, value=3) == 3
                    await an.run_in_actor(sleep_forever, name='sleeper')

                    start = time.monotonic()
                    cs.cancel()
                    # the body keeps blocking until the cancel lands
                    await portal.run(sleep_forever)

            elapsed = time.monotonic() - start
            assert cs.cancelled_caught
            assert an.cancel_called
            assert not an._children
            assert elapsed < 4, elapsed

    trio.run(main)


def test_failure_next_to_forever_sleeper(reg_addr, start_method):
    '''
    One `run_in_actor()` child fails while a sibling never returns:
    the failure must not wait for the sleeper.

    '''
    async def main():
        with trio.fail_after(20):
            with pytest.raises(tractor.RemoteActorError) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    await an.run_in_actor(
                        sleep_forever,
                        name='never_returns',
                    )
                    await an.run_in_actor(
                        fail_with_assert,
                        name='fails_soon',
                        delay=0.2,
                    )
                    spawned_at = time.monotonic()

            elapsed = time.monotonic() - spawned_at
            rae = excinfo.value
            assert rae.boxed_type is AssertionError
            assert rae.src_uid[0] == 'fails_soon'
            assert elapsed < 5, elapsed
            assert not an._children

    trio.run(main)


def test_body_awaits_failing_result(reg_addr, start_method):
    '''
    The body itself awaits the failing child's result and re-raises;
    the error is the bare box (or, tolerated by the spec, a group of
    boxes).

    '''
    async def main():
        with trio.fail_after(15):
            with pytest.raises(BaseException) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    portal = await an.run_in_actor(
                        fail_with_value_error,
                        name='value_failer',
                    )
                    await an.run_in_actor(sleep_forever, name='bystander')
                    await portal.wait_for_result()

            err = excinfo.value
            boxes = [
                e for e in iter_leaves(err)
                if not isinstance(e, trio.Cancelled)
            ]
            assert boxes
            for box in boxes:
                assert isinstance(box, tractor.RemoteActorError), err
                assert box.boxed_type is ValueError
                assert box.src_uid[0] == 'value_failer'
            assert not an._children

    trio.run(main)


@pytest.mark.parametrize(
    'exc_type',
    [ValueError, KeyboardInterrupt],
    ids=lambda t: t.__name__,
)
def test_body_error_propagates_as_itself(
    reg_addr,
    start_method,
    exc_type,
):
    state: dict = {}

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                state['an'] = an
                await an.run_in_actor(sleep_forever, name='sleeper')
                portal = await an.start_actor(
                    'daemon',
                    enable_modules=[__name__],
                )
                assert await portal.run(echo, value=1) == 1
                state['raised_at'] = time.monotonic()
                raise exc_type('raised in the nursery body')

    with pytest.raises(exc_type) as excinfo:
        trio.run(main)

    assert type(excinfo.value) is exc_type
    assert 'raised in the nursery body' in str(excinfo.value)
    an = state['an']
    assert an.cancel_called
    assert not an._children
    assert time.monotonic() - state['raised_at'] < 5


@pytest.mark.skipon_spawn_backend(
    'subint',
    reason='SIGKILLs a child process, a process-level fact',
)
def test_child_sigkilled_mid_call(reg_addr, start_method):
    '''
    A daemon is SIGKILLed while a task waits on a `portal.run()` into
    it: the caller must get a clear error, promptly, instead of
    hanging.

    '''
    acceptable = (
        tractor.TransportClosed,
        tractor.RemoteActorError,
        RuntimeFailure,  # includes `ActorFailure`
    )

    async def main() -> BaseException | None:
        from_call: list[BaseException] = []
        try:
            with trio.fail_after(15):
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    portal = await an.start_actor(
                        'doomed',
                        enable_modules=[__name__],
                    )
                    pid = await portal.run(get_pid)
                    assert pid != os.getpid()

                    async def kill_it():
                        await trio.sleep(0.5)
                        os.kill(pid, signal.SIGKILL)

                    async with trio.open_nursery() as tn:
                        tn.start_soon(kill_it)
                        try:
                            await portal.run(sleep_forever)
                        except acceptable as err:
                            from_call.append(err)
                            raise

                    # should not get here: the call has to error
                    pytest.fail('portal.run() returned after SIGKILL')

        except trio.TooSlowError:
            pytest.fail(
                'caller hung after its peer was SIGKILLed'
            )
        except BaseException as err:
            return err, from_call

        return None, from_call

    start = time.monotonic()
    err, from_call = trio.run(main)
    assert time.monotonic() - start < 15

    assert err is not None
    assert not isinstance(err, trio.TooSlowError)
    leaves = [
        e for e in iter_leaves(err)
        if not isinstance(e, trio.Cancelled)
    ]
    assert leaves, err
    for leaf in leaves:
        assert isinstance(leaf, acceptable), repr(leaf)
