'''
Legacy one-way streaming: `Portal.open_stream_from()` over a remote
async generator or a `@tractor.stream` function. Both APIs still work
and warn with a `DeprecationWarning`; leaving the block early cancels
the remote producer.

'''
import warnings

import pytest
import trio
import tractor
from tractor._exceptions import RemoteActorError
from tractor._testing import nursery_kwargs


_state: dict = {}


async def get_state() -> dict:
    return dict(_state)


# ---- child-side producers ----

async def count_to(n: int, delay: float = 0):
    '''A finite async generator.'''
    for i in range(n):
        yield i
        if delay:
            await trio.sleep(delay)


async def count_forever(tag: str):
    '''An infinite async generator recording how it ended.'''
    i = 0
    try:
        while True:
            yield i
            i += 1
            await trio.sleep(0.01)
    except BaseException as err:
        _state[tag] = type(err).__name__
        raise
    finally:
        _state[f'{tag}_last'] = i


async def fail_after_yields(n: int):
    for i in range(n):
        yield i
    raise ValueError('generator broke')


@tractor.stream
async def legacy_streamer(stream: tractor.Context, n: int) -> None:
    '''A `@tractor.stream` function (the runtime injects the ctx).'''
    for i in range(n):
        await stream.send_yield(i * 10)


# declaring `ctx` (not `stream`) on a `@stream` function is deprecated at
# decoration time; record it here, check it in a test below
with warnings.catch_warnings(record=True) as _decoration_warnings:
    warnings.simplefilter('always')

    @tractor.stream
    async def legacy_ctx_streamer(ctx: tractor.Context, n: int) -> None:
        for i in range(n):
            await ctx.send_yield(i)


async def not_a_generator() -> int:
    return 1


# ---- tests ----

def test_stream_decorator_warns_on_ctx_param():
    assert any(
        issubclass(w.category, DeprecationWarning)
        and str(w.message).startswith('`@tractor.stream decorated funcs')
        for w in _decoration_warnings
    )
    assert legacy_ctx_streamer._tractor_stream_function is True

    with pytest.warns(
        DeprecationWarning,
        match='^`@tractor.stream decorated funcs',
    ):
        @tractor.stream
        async def another(ctx, x: int):
            pass


def test_stream_decorator_needs_stream_param():
    async def no_ctx(x: int):
        pass

    with pytest.raises(TypeError, match='no_ctx must be `ctx: tractor.Context`'):
        tractor.stream(no_ctx)


def test_open_stream_from_async_gen(reg_addr, start_method):
    '''
    All values of a finite remote async generator arrive in order, the
    call warns `DeprecationWarning`, the stream then ends and a further
    `__anext__()` raises `StopAsyncIteration`.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'producer',
                    enable_modules=[__name__],
                )
                with pytest.warns(DeprecationWarning):
                    async with portal.open_stream_from(
                        count_to,
                        n=50,
                    ) as stream:
                        assert isinstance(stream, tractor.MsgStream)
                        got = [i async for i in stream]
                        with pytest.raises(StopAsyncIteration):
                            await stream.__anext__()

                assert got == list(range(50))
                await portal.cancel_actor()

    trio.run(main)


def test_open_stream_from_stream_func(reg_addr, start_method):
    '''A `@tractor.stream` function streams through `open_stream_from()`.'''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'producer',
                    enable_modules=[__name__],
                )
                for func, expect in [
                    (legacy_streamer, [0, 10, 20, 30, 40]),
                    (legacy_ctx_streamer, [0, 1, 2, 3, 4]),
                ]:
                    with pytest.warns(DeprecationWarning):
                        async with portal.open_stream_from(
                            func,
                            n=5,
                        ) as stream:
                            got = [i async for i in stream]
                    assert got == expect

                await portal.cancel_actor()

    trio.run(main)


def test_break_early_cancels_remote_generator(reg_addr, start_method):
    '''
    Breaking out of the `async for` over an infinite remote generator
    and leaving the block cancels the generator's task in the child.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'producer',
                    enable_modules=[__name__],
                )
                with pytest.warns(DeprecationWarning):
                    async with portal.open_stream_from(
                        count_forever,
                        tag='gen',
                    ) as stream:
                        async for i in stream:
                            if i == 9:
                                break

                # the cancel request is acked after the task ended
                with trio.fail_after(3):
                    while 'gen' not in (state := await portal.run(get_state)):
                        await trio.sleep(0.05)

                assert state['gen'] in ('Cancelled', 'GeneratorExit')
                last = state['gen_last']
                # it did not keep running after we left
                await trio.sleep(0.2)
                assert (await portal.run(get_state))['gen_last'] == last
                await portal.cancel_actor()

    trio.run(main)


def test_outer_cancel_cancels_remote_generator(reg_addr, start_method):
    '''The consumer's cancel scope bounds the producer's lifetime.'''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'producer',
                    enable_modules=[__name__],
                )
                with trio.move_on_after(0.5) as cs:
                    with pytest.warns(DeprecationWarning):
                        async with portal.open_stream_from(
                            count_forever,
                            tag='timed',
                        ) as stream:
                            async for _ in stream:
                                pass

                assert cs.cancelled_caught
                with trio.fail_after(3):
                    while 'timed' not in (state := await portal.run(get_state)):
                        await trio.sleep(0.05)
                assert state['timed'] in ('Cancelled', 'GeneratorExit')
                await portal.cancel_actor()

    trio.run(main)


def test_multiple_streams_one_portal(reg_addr, start_method):
    '''
    Concurrent `open_stream_from()` calls over one portal run separate
    remote tasks and each gets the full sequence.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'producer',
                    enable_modules=[__name__],
                )
                results: dict[int, list[int]] = {}

                async def consume(k: int):
                    async with portal.open_stream_from(
                        count_to,
                        n=30,
                        delay=0.001,
                    ) as stream:
                        results[k] = [i async for i in stream]

                with pytest.warns(DeprecationWarning):
                    async with trio.open_nursery() as tn:
                        for k in range(3):
                            tn.start_soon(consume, k)

                assert results == {k: list(range(30)) for k in range(3)}
                await portal.cancel_actor()

    trio.run(main)


def test_fan_in_from_several_actors(reg_addr, start_method):
    '''One-way fan-in: three actors' generators consumed concurrently.'''
    names = ['gen_a', 'gen_b', 'gen_c']

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portals = [
                    await an.start_actor(n, enable_modules=[__name__])
                    for n in names
                ]
                totals: dict[str, int] = {}

                async def consume(portal):
                    async with portal.open_stream_from(
                        count_to,
                        n=40,
                    ) as stream:
                        got = [i async for i in stream]
                    assert got == list(range(40))
                    totals[portal.chan.aid.name] = sum(got)

                with pytest.warns(DeprecationWarning):
                    async with trio.open_nursery() as tn:
                        for portal in portals:
                            tn.start_soon(consume, portal)

                assert totals == {n: sum(range(40)) for n in names}
                await an.cancel()

    trio.run(main)


def test_remote_generator_error(reg_addr, start_method):
    '''
    An error in the remote generator is raised boxed from the consumer's
    `async for`, after its values (the stream does not end cleanly).

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'producer',
                    enable_modules=[__name__],
                )
                got: list[int] = []
                with (
                    pytest.warns(DeprecationWarning),
                    pytest.raises(RemoteActorError) as excinfo,
                ):
                    async with portal.open_stream_from(
                        fail_after_yields,
                        n=3,
                    ) as stream:
                        async for i in stream:
                            got.append(i)
                        # `Stop` is only sent when the generator is
                        # exhausted, so the error ends the iteration
                        pytest.fail('stream ended without the error')

                assert got == [0, 1, 2]
                assert excinfo.value.boxed_type is ValueError
                assert excinfo.value.src_uid == portal.chan.aid.uid
                await portal.cancel_actor()

    trio.run(main)


def test_open_stream_from_rejects_plain_function(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'producer',
                    enable_modules=[__name__],
                )
                with (
                    pytest.warns(DeprecationWarning),
                    pytest.raises(TypeError, match='async generator'),
                ):
                    async with portal.open_stream_from(not_a_generator):
                        pass
                await portal.cancel_actor()

    trio.run(main)
