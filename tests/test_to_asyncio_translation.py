'''
The cross-loop translation table of `tractor.to_asyncio` (api.md §10),
row by row and in both directions, inside one asyncio host with trio as
its guest (no actors here: `test_infected_asyncio.py` runs the same rows
in spawned actors on every backend). Each row also checks that the
asyncio task is gone once its trio side is, and that every wait is
bounded.

'''
import asyncio
import time

import pytest
import trio

import tractor
from tractor import to_asyncio
from tractor.to_asyncio import (
    AsyncioCancelled,
    AsyncioRuntimeTranslationError,
    AsyncioTaskExited,
    TrioCancelled,
    TrioTaskExited,
)


def run_guest(trio_main, seconds: float = 10):
    '''Run `trio_main()` as the guest of a fresh asyncio loop, bounded.'''
    async def bounded():
        with trio.fail_after(seconds):
            return await trio_main()

    return to_asyncio.run_as_asyncio_guest(bounded)


def pending_aio_tasks() -> list[asyncio.Task]:
    '''asyncio tasks still running besides the host's own.'''
    return [
        task for task in asyncio.all_tasks()
        if not task.done() and task.get_name() != 'tractor-asyncio-host'
    ]


class Seen:
    '''What the asyncio side of a pair saw when it ended.'''
    def __init__(self) -> None:
        self.exc: BaseException|None = None

    async def block_until_told(self, chan: to_asyncio.LinkedTaskChannel) -> None:
        chan.started_nowait('ready')
        try:
            await asyncio.sleep(float('inf'))
        except BaseException as err:
            self.exc = err
            raise


# ---- asyncio side ----

async def aio_return(value):
    await asyncio.sleep(0.01)
    return value


async def aio_raise(msg: str):
    await asyncio.sleep(0.01)
    raise ValueError(msg)


async def aio_cancel_self():
    asyncio.current_task().cancel()
    await asyncio.sleep(10)


async def aio_stream(chan, n: int):
    chan.started_nowait(n)
    for i in range(n):
        chan.send_nowait(i)
        await asyncio.sleep(0)
    return 'streamed'


async def aio_echo(chan):
    chan.started_nowait('echoing')
    while True:
        chan.send_nowait(await chan.get())


# ---- row: asyncio task raises E -> trio side raises E ----

def test_aio_error_is_raised_in_trio_by_run_task():
    async def main():
        with pytest.raises(ValueError, match='aio boom'):
            await to_asyncio.run_task(aio_raise, msg='aio boom')
        assert not pending_aio_tasks()
        return await to_asyncio.run_task(aio_return, value=42)

    assert run_guest(main) == 42


def test_aio_error_is_raised_to_a_receiving_trio_task():
    async def aio_send_then_raise(chan):
        chan.started_nowait(None)
        chan.send_nowait(1)
        await asyncio.sleep(0.01)
        raise ValueError('after one value')

    async def main():
        got = []
        with pytest.raises(ValueError, match='after one value'):
            async with to_asyncio.open_channel_from(aio_send_then_raise) as (chan, _):
                async for value in chan:
                    got.append(value)
        assert got == [1]
        assert not pending_aio_tasks()

    run_guest(main)


def test_aio_error_interrupts_a_busy_trio_side():
    '''The trio side need not be receiving: the pair fails like a nursery.'''
    async def aio_fail_soon(chan):
        chan.started_nowait(None)
        await asyncio.sleep(0.05)
        raise ValueError('while trio sleeps')

    async def main():
        start = trio.current_time()
        with pytest.raises(ValueError, match='while trio sleeps'):
            async with to_asyncio.open_channel_from(aio_fail_soon):
                await trio.sleep(5)
        assert trio.current_time() - start < 2

    run_guest(main)


def test_aio_keyboard_interrupt_is_raised_in_trio_not_in_the_host_loop():
    async def aio_kbi():
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    async def main():
        with pytest.raises(KeyboardInterrupt):
            await to_asyncio.run_task(aio_kbi)
        return 'host loop still fine'

    assert run_guest(main) == 'host loop still fine'


# ---- row: asyncio task cancelled -> AsyncioCancelled ----

def test_aio_self_cancel_is_asyncio_cancelled():
    async def main():
        with pytest.raises(AsyncioCancelled) as info:
            await to_asyncio.run_task(aio_cancel_self)
        assert isinstance(info.value.__cause__, asyncio.CancelledError)

    run_guest(main)


def test_cancel_asyncio_task_ends_the_channel_with_asyncio_cancelled():
    async def main():
        with pytest.raises(AsyncioCancelled, match='stop it'):
            async with to_asyncio.open_channel_from(aio_echo) as (chan, first):
                assert first == 'echoing'
                await chan.send('x')
                assert await chan.receive() == 'x'
                chan.cancel_asyncio_task('stop it')
                await chan.receive()
        assert not pending_aio_tasks()

    run_guest(main)


# ---- row: asyncio task returns while trio receives ----

def test_graceful_aio_return_ends_the_channel():
    async def main():
        async with to_asyncio.open_channel_from(aio_stream, n=5) as (chan, first):
            assert first == 5
            assert [value async for value in chan] == list(range(5))
            with pytest.raises(trio.EndOfChannel):
                await chan.receive()
            assert await chan.wait_for_result() == 'streamed'
            with pytest.raises(trio.BrokenResourceError):
                await chan.send('too late')

    run_guest(main)


def test_graceful_aio_return_unsuppressed_is_asyncio_task_exited():
    async def main():
        got = []
        with pytest.raises(AsyncioTaskExited):
            async with to_asyncio.open_channel_from(
                aio_stream, n=3, suppress_graceful_exits=False,
            ) as (chan, _):
                async for value in chan:
                    got.append(value)
        # every value sent before returning still arrived
        assert got == [0, 1, 2]

    run_guest(main)


# ---- row: trio side errors or is cancelled -> TrioCancelled in asyncio ----

def test_trio_error_is_trio_cancelled_in_asyncio():
    seen = Seen()

    async def main():
        with pytest.raises(NameError, match='trio boom'):
            async with to_asyncio.open_channel_from(seen.block_until_told):
                raise NameError('trio boom')
        assert not pending_aio_tasks()

    run_guest(main)
    assert isinstance(seen.exc, TrioCancelled)
    assert isinstance(seen.exc.__cause__, NameError)


def test_trio_cancellation_is_trio_cancelled_in_asyncio():
    seen = Seen()

    async def main():
        with trio.move_on_after(0.1) as cs:
            async with to_asyncio.open_channel_from(seen.block_until_told):
                await trio.sleep_forever()
        assert cs.cancelled_caught
        assert not pending_aio_tasks()

    run_guest(main)
    assert isinstance(seen.exc, TrioCancelled)
    assert isinstance(seen.exc.__cause__, trio.Cancelled)


def test_cancelled_run_task_is_trio_cancelled_in_asyncio():
    seen = Seen()

    async def aio_wait(chan):
        try:
            await asyncio.sleep(float('inf'))
        except BaseException as err:
            seen.exc = err
            raise

    async def main():
        with trio.move_on_after(0.1):
            await to_asyncio.run_task(aio_wait)
        assert not pending_aio_tasks()

    run_guest(main)
    assert isinstance(seen.exc, TrioCancelled)


def test_trio_cancelled_is_delivered_at_the_blocking_await():
    '''Failing the awaited future, not `Task.cancel()`: no CancelledError.'''
    outcome = {}

    async def aio_queue_waiter(chan):
        chan.started_nowait(None)
        try:
            await chan.get()
        except TrioCancelled:
            outcome['caught'] = 'TrioCancelled'
            # the task may clean up (and await) as usual afterwards
            await asyncio.sleep(0.01)
            outcome['cleaned_up'] = True
            return 'handled'

    async def main():
        with trio.move_on_after(0.1):
            async with to_asyncio.open_channel_from(aio_queue_waiter):
                await trio.sleep_forever()

    run_guest(main)
    assert outcome == {'caught': 'TrioCancelled', 'cleaned_up': True}


def test_task_group_in_asyncio_is_cancelled_not_orphaned():
    '''An asyncio task joining a TaskGroup is cancelled, so its children end too.'''
    children_ended = []

    async def aio_child(i):
        try:
            await asyncio.sleep(float('inf'))
        finally:
            children_ended.append(i)

    async def aio_group(chan):
        chan.started_nowait(None)
        async with asyncio.TaskGroup() as tg:
            for i in range(3):
                tg.create_task(aio_child(i))

    async def main():
        with trio.move_on_after(0.1):
            async with to_asyncio.open_channel_from(aio_group):
                await trio.sleep_forever()
        assert not pending_aio_tasks()

    run_guest(main)
    assert sorted(children_ended) == [0, 1, 2]


# ---- row: trio side leaves the block while asyncio runs -> TrioTaskExited ----

def test_trio_exit_is_trio_task_exited_in_asyncio():
    seen = Seen()

    async def main():
        async with to_asyncio.open_channel_from(seen.block_until_told) as (_, first):
            assert first == 'ready'
        assert not pending_aio_tasks()

    run_guest(main)
    assert isinstance(seen.exc, TrioTaskExited)


def test_aclose_ends_the_asyncio_sides_get():
    async def aio_drain(chan):
        chan.started_nowait(None)
        got = []
        try:
            while True:
                got.append(await chan.get())
        except TrioTaskExited:
            return got

    async def main():
        async with to_asyncio.open_channel_from(aio_drain) as (chan, _):
            await chan.send(1)
            await chan.send(2)
            await chan.aclose()
            assert chan.closed()
            with pytest.raises(trio.ClosedResourceError):
                await chan.send(3)
            return await chan.wait_for_result()

    assert run_guest(main) == [1, 2]


# ---- row: asyncio task raises before started_nowait() ----

def test_aio_error_before_started_raises_from_entry():
    async def main():
        entered = False
        with pytest.raises(ValueError, match='too early'):
            async with to_asyncio.open_channel_from(aio_raise, msg='too early'):
                entered = True
        assert not entered

    run_guest(main)


def test_aio_return_before_started_is_asyncio_task_exited():
    async def main():
        with pytest.raises(AsyncioTaskExited, match='before calling'):
            async with to_asyncio.open_channel_from(aio_return, value=1):
                pass

    run_guest(main)


# ---- bounded teardown ----

def test_stubborn_asyncio_task_is_abandoned_with_an_error():
    '''No trio task hangs on an asyncio task that will not end.'''
    async def aio_stubborn(chan):
        chan.started_nowait(None)
        # ignores TrioTaskExited and the cancel after it; the host's
        # shutdown cancel (the third) ends it
        for _ in range(3):
            try:
                await asyncio.sleep(float('inf'))
            except BaseException:
                pass

    async def main():
        start = time.monotonic()
        with pytest.raises(AsyncioRuntimeTranslationError, match='did not end'):
            async with to_asyncio.open_channel_from(aio_stubborn):
                pass
        assert time.monotonic() - start < 2 * to_asyncio._pair.AIO_EXIT_GRACE + 1

    start = time.monotonic()
    run_guest(main)
    # the host abandons it at shutdown too, bounded
    assert time.monotonic() - start < 6


# ---- the channel API ----

def test_echo_and_broadcast_subscribers():
    async def main():
        async with to_asyncio.open_channel_from(aio_echo) as (chan, first):
            assert first == 'echoing'
            for i in range(50):
                await chan.send(i)
                assert await chan.receive() == i

            results: dict[int, list] = {0: [], 1: []}

            async def consume(key, task_status):
                async with chan.subscribe() as sub:
                    task_status.started()
                    async for value in sub:
                        results[key].append(value)
                        if len(results[key]) == 5:
                            return

            async with trio.open_nursery() as tn:
                await tn.start(consume, 0)
                await tn.start(consume, 1)
                for i in range(5):
                    await chan.send(i)
        assert results == {0: list(range(5)), 1: list(range(5))}

    run_guest(main)


def test_legacy_to_trio_from_trio_params():
    async def aio_legacy(to_trio, from_trio):
        to_trio.send_nowait('first')
        while (value := await from_trio.get()) is not None:
            to_trio.send_nowait(value * 2)
        return 'legacy done'

    async def main():
        async with to_asyncio.open_channel_from(aio_legacy) as (chan, first):
            assert first == 'first'
            await chan.send(21)
            assert await chan.receive() == 42
            await chan.send(None)
            assert await chan.wait_for_result() == 'legacy done'

    run_guest(main)


def test_asyncio_side_send_nowait_overflow_is_queue_full():
    async def aio_flood(chan):
        chan.started_nowait(None)
        with pytest.raises(asyncio.QueueFull):
            for i in range(2**11):
                chan.send_nowait(i)
        return 'flooded'

    async def main():
        async with to_asyncio.open_channel_from(aio_flood) as (chan, _):
            assert await chan.wait_for_result() == 'flooded'

    run_guest(main)


def test_coroutine_object_is_a_type_error():
    async def main():
        coro = aio_return(1)
        try:
            with pytest.raises(TypeError, match='not a coroutine object'):
                await to_asyncio.run_task(coro)
        finally:
            coro.close()

    run_guest(main)


def test_outside_an_asyncio_host_is_a_runtime_error():
    async def main():
        with pytest.raises(RuntimeError, match='infect_asyncio: bool'):
            await to_asyncio.run_task(aio_return, value=1)
        with pytest.raises(RuntimeError, match='infect_asyncio: bool'):
            async with to_asyncio.open_channel_from(aio_stream, n=1):
                pass

    trio.run(main)


def test_guest_run_returns_and_raises_like_trio_run():
    async def ok():
        return 'ok'

    async def bad():
        raise LookupError('from trio')

    assert run_guest(ok) == 'ok'
    with pytest.raises(LookupError, match='from trio'):
        run_guest(bad)
    # the runtime flag is only set while the guest runs
    assert not tractor.get_runtime_vars()['_is_infected_aio']


# ---- the host itself ----

def cancel_the_host() -> None:
    '''From asyncio code: cancel the host's main task (as a SIGINT would).'''
    for task in asyncio.all_tasks():
        if task.get_name() == 'tractor-asyncio-host':
            task.cancel()


def test_cancelled_host_ends_the_guest_first():
    ended = []

    async def aio_cancel_host():
        cancel_the_host()
        await asyncio.sleep(float('inf'))

    async def main():
        try:
            await to_asyncio.run_task(aio_cancel_host)
        finally:
            ended.append('trio teardown ran')

    start = time.monotonic()
    assert run_guest(main) is None
    assert ended == ['trio teardown ran']
    assert time.monotonic() - start < 3


def test_guest_cannot_start_inside_a_running_loop():
    async def inside():
        with pytest.raises(RuntimeError, match='already running'):
            to_asyncio.run_as_asyncio_guest(trio.sleep, 0)

    asyncio.run(inside())


def test_aio_error_right_after_started_still_interrupts_the_body():
    async def aio_start_then_fail(chan):
        chan.started_nowait('up')
        raise ValueError('right after started')

    async def main():
        with pytest.raises(ValueError, match='right after started'):
            async with to_asyncio.open_channel_from(aio_start_then_fail) as (_, first):
                assert first == 'up'
                await trio.sleep_forever()

    run_guest(main)
