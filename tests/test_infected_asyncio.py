'''
Actors spawned with `infect_asyncio=True`, on every spawn backend: they
run asyncio with trio as its guest, `tractor.to_asyncio` works there and
nowhere else, and every row of the cross-loop translation table
(api.md §10) holds across IPC too: a remote caller sees the asyncio
task's error as the boxed type, and remote cancellation reaches the
asyncio task as `TrioCancelled`.

'''
import asyncio
import os
import time

import pytest
import trio

import tractor
from tractor import to_asyncio
from tractor._exceptions import ContextCancelled
from tractor._testing import nursery_kwargs
from tractor.to_asyncio import (
    AsyncioCancelled,
    AsyncioTaskExited,
)

# what the asyncio side of each scenario saw, per actor (read via `seen()`)
_seen: dict[str, str] = {}


def _describe(err: BaseException) -> str:
    cause = err.__cause__
    return type(err).__name__ + (f' from {type(cause).__name__}' if cause else '')


# ---- asyncio side (runs in the infected child) ----

async def aio_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


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


async def aio_record_until_told(chan, key: str):
    chan.started_nowait(key)
    try:
        await asyncio.sleep(float('inf'))
    except BaseException as err:
        _seen[key] = _describe(err)
        raise


# ---- trio side (RPC targets in the child) ----

async def infection_status() -> bool:
    return tractor.current_actor().is_infected_aio()


async def host_loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


async def double_in_asyncio(x: int) -> int:
    return await to_asyncio.run_task(aio_double, x=x)


async def raise_in_asyncio(msg: str):
    return await to_asyncio.run_task(aio_raise, msg=msg)


async def cancel_in_asyncio():
    return await to_asyncio.run_task(aio_cancel_self)


async def stream_from_asyncio(n: int, suppress: bool) -> list[int]:
    got = []
    async with to_asyncio.open_channel_from(
        aio_stream, n=n, suppress_graceful_exits=suppress,
    ) as (chan, first):
        assert first == n
        async for value in chan:
            got.append(value)
    return got


async def fail_before_started(msg: str):
    async with to_asyncio.open_channel_from(aio_raise, msg=msg):
        raise AssertionError('the block must not be entered')


async def trio_side_errors(key: str):
    async with to_asyncio.open_channel_from(aio_record_until_told, key=key):
        raise NameError('trio side boom')


async def trio_side_cancelled(key: str) -> bool:
    with trio.move_on_after(0.05) as cs:
        async with to_asyncio.open_channel_from(aio_record_until_told, key=key):
            await trio.sleep_forever()
    return cs.cancelled_caught


async def trio_side_exits(key: str) -> str:
    async with to_asyncio.open_channel_from(
        aio_record_until_told, key=key,
    ) as (_, first):
        return first


async def seen(key: str) -> str|None:
    return _seen.get(key)


async def cancel_actor_named(name: str) -> None:
    async with tractor.wait_for_actor(name) as portal:
        await portal.cancel_actor()


@tractor.context
async def echo_via_asyncio(ctx: tractor.Context) -> None:
    '''Bridge an IPC stream to an asyncio echo task.'''
    async with to_asyncio.open_channel_from(aio_echo) as (chan, first):
        await ctx.started(first)
        async with ctx.open_stream() as stream:
            async for msg in stream:
                await chan.send(msg)
                await stream.send(await chan.receive())


@tractor.context
async def park_in_asyncio(ctx: tractor.Context, key: str) -> None:
    async with to_asyncio.open_channel_from(aio_record_until_told, key=key):
        await ctx.started()
        await trio.sleep_forever()


async def stop_at_exit(path: str) -> None:
    '''Remove `path` when this actor's runtime ends (`lifetime_stack`).'''
    tractor.current_actor().lifetime_stack.callback(os.remove, path)


async def park_with_asyncio_task() -> None:
    await to_asyncio.run_task(aio_record_until_told_forever)


async def aio_record_until_told_forever():
    await asyncio.sleep(float('inf'))


# ---- helpers ----

def open_tree(reg_addr, start_method):
    return tractor.open_nursery(**nursery_kwargs(reg_addr, start_method))


async def start_infected(an, name='infected'):
    return await an.start_actor(name, enable_modules=[__name__], infect_asyncio=True)


# ---- tests ----

def test_only_infected_actors_are_infected(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            async with open_tree(reg_addr, start_method) as an:
                infected = await start_infected(an)
                plain = await an.start_actor('plain', enable_modules=[__name__])
                assert await infected.run(infection_status) is True
                assert await plain.run(infection_status) is False
                assert not tractor.current_actor().is_infected_aio()

                assert await infected.run(double_in_asyncio, x=21) == 42
                # not infected: a clear error naming the mode
                with pytest.raises(tractor.RemoteActorError) as info:
                    await plain.run(double_in_asyncio, x=21)
                assert info.value.boxed_type is RuntimeError
                assert 'infect_asyncio: bool' in str(info.value.tb_str)
                await an.cancel()

    trio.run(main)


@pytest.mark.parametrize('wanted', ['auto', 'asyncio'])
def test_host_loop_is_uvloop_when_it_can_load(
    reg_addr, start_method, wanted, monkeypatch,
):
    '''
    The host loop is uvloop's when installed (as in this test env) and
    `$TRACTOR_AIO_LOOP` allows it; a `subint` actor gets asyncio's (uvloop
    cannot load in a sub-interpreter) and still works.
    '''
    if start_method == 'mp_forkserver' and wanted != 'auto':
        pytest.skip(
            "mp_forkserver children inherit the forkserver's environment, "
            "fixed when it started: setting the variable here cannot reach them"
        )
    pytest.importorskip('uvloop')
    monkeypatch.setenv('TRACTOR_AIO_LOOP', wanted)
    expect = (
        'asyncio' if wanted == 'asyncio' or start_method == 'subint'
        else 'uvloop'
    )

    async def main():
        with trio.fail_after(20):
            async with open_tree(reg_addr, start_method) as an:
                portal = await start_infected(an)
                assert (await portal.run(host_loop_module)).split('.')[0] == expect
                assert await portal.run(double_in_asyncio, x=4) == 8
                await an.cancel()

    trio.run(main)


def test_unknown_host_loop_is_refused(monkeypatch):
    monkeypatch.setenv('TRACTOR_AIO_LOOP', 'tokio')

    async def main():
        pass

    with pytest.raises(ValueError, match='TRACTOR_AIO_LOOP'):
        to_asyncio.run_as_asyncio_guest(main)


def test_run_in_actor_infected(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            async with open_tree(reg_addr, start_method) as an:
                portal = await an.run_in_actor(
                    double_in_asyncio, x=5, infect_asyncio=True,
                )
                assert await portal.wait_for_result() == 10

    trio.run(main)


@pytest.mark.parametrize(
    'fn, kwargs, boxed',
    [
        (raise_in_asyncio, {'msg': 'aio boom'}, ValueError),
        (cancel_in_asyncio, {}, AsyncioCancelled),
        (stream_from_asyncio, {'n': 3, 'suppress': False}, AsyncioTaskExited),
        (fail_before_started, {'msg': 'too early'}, ValueError),
        (trio_side_errors, {'key': 'errors'}, NameError),
    ],
    ids=[
        'aio-raises', 'aio-cancelled', 'aio-returns-unsuppressed',
        'aio-raises-before-started', 'trio-side-raises',
    ],
)
def test_remote_caller_sees_the_boxed_type(reg_addr, start_method, fn, kwargs, boxed):
    async def main():
        with trio.fail_after(20):
            async with open_tree(reg_addr, start_method) as an:
                portal = await start_infected(an)
                with pytest.raises(tractor.RemoteActorError) as info:
                    await portal.run(fn, **kwargs)
                assert info.value.boxed_type is boxed
                # the actor survives its task's failure
                assert await portal.run(double_in_asyncio, x=1) == 2
                await an.cancel()

    trio.run(main)


def test_what_the_asyncio_side_is_told(reg_addr, start_method):
    '''trio error -> TrioCancelled from it; trio cancelled -> from Cancelled; exit -> TrioTaskExited.'''
    async def main():
        with trio.fail_after(20):
            async with open_tree(reg_addr, start_method) as an:
                portal = await start_infected(an)
                with pytest.raises(tractor.RemoteActorError):
                    await portal.run(trio_side_errors, key='errors')
                assert await portal.run(seen, key='errors') == 'TrioCancelled from NameError'

                assert await portal.run(trio_side_cancelled, key='cancelled') is True
                assert await portal.run(seen, key='cancelled') == 'TrioCancelled from Cancelled'

                assert await portal.run(trio_side_exits, key='exits') == 'exits'
                assert await portal.run(seen, key='exits') == 'TrioTaskExited'

                # a graceful return ends the channel (suppressed by default)
                assert await portal.run(stream_from_asyncio, n=4, suppress=True) == [0, 1, 2, 3]
                await an.cancel()

    trio.run(main)


def test_remote_cancel_reaches_the_asyncio_task(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            async with open_tree(reg_addr, start_method) as an:
                portal = await start_infected(an)
                async with portal.open_context(park_in_asyncio, key='ctxc') as (ctx, _):
                    await ctx.cancel()
                assert await portal.run(seen, key='ctxc') == 'TrioCancelled from Cancelled'

                # its actor cancelled by a peer: the caller gets
                # `ContextCancelled`, promptly
                other = await an.start_actor('canceller', enable_modules=[__name__])
                with pytest.raises(ContextCancelled) as info:
                    async with portal.open_context(park_in_asyncio, key='peer') as (ctx, _):
                        await other.run(cancel_actor_named, name='infected')
                        await trio.sleep_forever()
                assert info.value.canceller[0] == 'canceller'
                await an.cancel()

    trio.run(main)


def test_echo_stream_through_asyncio(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            async with open_tree(reg_addr, start_method) as an:
                portal = await start_infected(an)
                async with (
                    portal.open_context(echo_via_asyncio) as (ctx, first),
                    ctx.open_stream() as stream,
                ):
                    assert first == 'echoing'
                    for i in range(200):
                        await stream.send(i)
                        assert await stream.receive() == i
                await an.cancel()

    trio.run(main)


def test_cancelled_infected_actor_tears_down(reg_addr, start_method, tmp_path):
    '''Cancelling an infected actor with asyncio tasks in flight is prompt and
    runs its whole teardown (`lifetime_stack` included).'''
    marker = tmp_path / 'alive'

    async def main():
        with trio.fail_after(20):
            async with open_tree(reg_addr, start_method) as an:
                portal = await start_infected(an)
                marker.write_text('x')
                await portal.run(stop_at_exit, path=str(marker))
                await an.run_in_actor(
                    park_with_asyncio_task, name='parked', infect_asyncio=True,
                )
                async with tractor.wait_for_actor('parked'):
                    pass
                start = trio.current_time()
                await an.cancel()
                assert trio.current_time() - start < 3

    trio.run(main)
    assert not marker.exists()


def test_infected_root(reg_addr, start_method):
    '''A root run as an asyncio guest is infected and spawns either kind.'''
    async def trio_main():
        with trio.fail_after(20):
            async with open_tree(reg_addr, start_method) as an:
                assert tractor.current_actor().is_infected_aio()
                assert await to_asyncio.run_task(aio_double, x=4) == 8
                infected = await start_infected(an)
                plain = await an.start_actor('plain', enable_modules=[__name__])
                assert await infected.run(infection_status) is True
                assert await plain.run(infection_status) is False
                await an.cancel()
        return 'root done'

    assert to_asyncio.run_as_asyncio_guest(trio_main) == 'root done'
    assert not tractor.get_runtime_vars()['_is_infected_aio']


def test_infected_child_spawns_children(reg_addr, start_method):
    async def main():
        with trio.fail_after(25):
            async with open_tree(reg_addr, start_method) as an:
                portal = await an.run_in_actor(
                    spawn_both_kinds, infect_asyncio=True,
                    start_method=start_method,
                )
                assert await portal.wait_for_result() == [True, False, 6]

    trio.run(main)


async def spawn_both_kinds(start_method: str) -> list:
    async with tractor.open_nursery(start_method=start_method) as an:
        infected = await start_infected(an, name='grandchild_aio')
        plain = await an.start_actor('grandchild_plain', enable_modules=[__name__])
        result = [
            await infected.run(infection_status),
            await plain.run(infection_status),
            await to_asyncio.run_task(aio_double, x=3),
        ]
        await an.cancel()
    return result



def test_cancelled_host_cancels_an_infected_root(reg_addr, start_method, tmp_path):
    '''
    asyncio cancelling the host of an infected root (as a SIGINT handler
    of asyncio's would) cancels the root actor: its children are torn
    down and its teardown (`lifetime_stack`) runs before the loop stops.
    '''
    marker = tmp_path / 'root-alive'
    marker.write_text('x')

    async def aio_cancel_host():
        for task in asyncio.all_tasks():
            if task.get_name() == 'tractor-asyncio-host':
                task.cancel()
        await asyncio.sleep(float('inf'))

    async def trio_main():
        with trio.fail_after(20):
            async with open_tree(reg_addr, start_method) as an:
                tractor.current_actor().lifetime_stack.callback(os.remove, marker)
                portal = await start_infected(an)
                assert await portal.run(double_in_asyncio, x=2) == 4
                await to_asyncio.run_task(aio_cancel_host)
        return 'root ended'

    start = time.monotonic()
    to_asyncio.run_as_asyncio_guest(trio_main)
    assert time.monotonic() - start < 10
    assert not marker.exists()
