'''
Bidirectional streaming over `Context.open_stream()`: an echo server,
one-way fan-in from several actors, end-of-stream when either side
closes first, several dialogs over one portal, and a 10,000 message
stream with nothing lost or reordered.

'''
import pytest
import trio
import tractor
from tractor._testing import nursery_kwargs


# ---- child-side endpoints ----

@tractor.context
async def echo_server(ctx: tractor.Context) -> int:
    '''Send back every item until the parent closes its stream.'''
    count = 0
    await ctx.started('echo ready')
    async with ctx.open_stream() as stream:
        async for msg in stream:
            await stream.send(msg)
            count += 1
    return count


@tractor.context
async def one_way_producer(
    ctx: tractor.Context,
    count: int,
) -> str:
    '''Stream `(name, i)` for `i < count`, then close our side.'''
    name = tractor.current_actor().name
    await ctx.started(name)
    async with ctx.open_stream() as stream:
        for i in range(count):
            await stream.send((name, i))
    return name


@tractor.context
async def wait_for_parent_close(ctx: tractor.Context) -> dict:
    '''
    Read until the parent closes its side and report exactly what our
    stream then looked like.

    '''
    await ctx.started()
    got: list[int] = []
    report: dict = {}
    async with ctx.open_stream() as stream:
        async for msg in stream:
            got.append(msg)
        else:
            # the loop ended by end-of-stream, not by `break`
            report['for_else_ran'] = True

        report['got'] = got
        # every later receive raises EoC again
        try:
            await stream.receive()
        except trio.EndOfChannel:
            report['receive_after_eoc'] = 'EndOfChannel'
        # sending into a stream the peer ended raises the stored EoC
        try:
            await stream.send('too late')
        except trio.EndOfChannel:
            report['send_after_eoc'] = 'EndOfChannel'
        report['closed'] = stream.closed
        report['eoc_stored'] = isinstance(stream._eoc, trio.EndOfChannel)

    return report


@tractor.context
async def close_first(ctx: tractor.Context, count: int) -> str:
    '''Send `count` items, close our side, then outlive the stream.'''
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(count):
            await stream.send(i)

    # our side is closed: sending again raises EoC locally
    try:
        await stream.send('nope')
    except trio.EndOfChannel:
        pass
    else:
        raise AssertionError('send after our own close did not raise')

    await trio.sleep(0.2)
    return 'child closed first'


@tractor.context
async def bulk_sender(
    ctx: tractor.Context,
    count: int,
    window: int = 0,
) -> int:
    '''
    Send `0..count-1`; with `window > 0` wait for the parent's ack
    after every `window` items (explicit flow control).

    '''
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(count):
            await stream.send(i)
            if window and (i + 1) % window == 0:
                assert await stream.receive() == i
    return count


@tractor.context
async def bulk_receiver(ctx: tractor.Context) -> tuple[int, bool]:
    '''
    Receive (buffering any overrun) until the parent closes; report
    the count and whether everything came in order.

    '''
    await ctx.started()
    expect = 0
    in_order = True
    async with ctx.open_stream(allow_overruns=True) as stream:
        await stream.send('ready')
        async for i in stream:
            if i != expect:
                in_order = False
            expect += 1
    return expect, in_order


# ---- tests ----

def test_echo_server(reg_addr, start_method):
    '''Round trips through a child echo server, in order.'''
    rounds = 200

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'echoer',
                    enable_modules=[__name__],
                )
                async with portal.open_context(echo_server) as (ctx, first):
                    assert first == 'echo ready'
                    async with ctx.open_stream() as stream:
                        assert stream.ctx is ctx
                        assert stream.chan is ctx.chan
                        assert not stream.closed
                        # nothing sent yet, so nothing to take
                        with pytest.raises(trio.WouldBlock):
                            stream.receive_nowait()
                        for i in range(rounds):
                            payload = {'i': i, 'data': [i, str(i)]}
                            await stream.send(payload)
                            assert await stream.receive() == payload

                        # an echo already queued is taken without waiting
                        await stream.send('last')
                        with trio.fail_after(3):
                            while True:
                                try:
                                    assert stream.receive_nowait() == 'last'
                                    break
                                except trio.WouldBlock:
                                    await trio.sleep(0.01)

                    assert await ctx.wait_for_result() == rounds + 1

                await portal.cancel_actor()

    trio.run(main)


def test_echo_server_reused_by_many_contexts(reg_addr, start_method):
    '''
    Several concurrent dialogs over one portal each get their own
    stream; nothing crosses over between them.

    '''
    n_ctxs = 4
    rounds = 50

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'echoer',
                    enable_modules=[__name__],
                )
                results: dict[int, int] = {}

                async def dialog(k: int):
                    async with portal.open_context(echo_server) as (ctx, _):
                        async with ctx.open_stream() as stream:
                            for i in range(rounds):
                                await stream.send((k, i))
                                assert await stream.receive() == [k, i]
                        results[k] = await ctx.wait_for_result()

                async with trio.open_nursery() as tn:
                    for k in range(n_ctxs):
                        tn.start_soon(dialog, k)

                assert results == {k: rounds for k in range(n_ctxs)}
                await portal.cancel_actor()

    trio.run(main)


def test_one_way_fan_in(reg_addr, start_method):
    '''
    Three actors stream concurrently into the root; a trio memory
    channel merges them (the root's streams allow overruns since the
    merge is slower than the producers); each producer's items arrive
    complete and in its order.

    '''
    count = 100
    names = ['prod_0', 'prod_1', 'prod_2']

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portals = [
                    await an.start_actor(name, enable_modules=[__name__])
                    for name in names
                ]
                send, recv = trio.open_memory_channel(0)
                returned: list[str] = []

                async def pump(portal, send_clone):
                    async with send_clone:
                        async with portal.open_context(
                            one_way_producer,
                            count=count,
                        ) as (ctx, first):
                            assert first == portal.chan.aid.name
                            # the merge is slower than the producers:
                            # buffer instead of overrunning them
                            async with ctx.open_stream(
                                allow_overruns=True,
                            ) as stream:
                                async for item in stream:
                                    await send_clone.send(tuple(item))
                            returned.append(await ctx.wait_for_result())

                per_actor: dict[str, list[int]] = {n: [] for n in names}
                async with trio.open_nursery() as tn:
                    async with send:
                        for portal in portals:
                            tn.start_soon(pump, portal, send.clone())
                    async for name, i in recv:
                        per_actor[name].append(i)

                assert sorted(returned) == names
                for name in names:
                    assert per_actor[name] == list(range(count))
                await an.cancel()

    trio.run(main)


def test_parent_closes_stream_first(reg_addr, start_method):
    '''
    The parent leaves its stream block first: the child's `async for`
    ends (its `else:` runs), later child receives/sends raise
    `trio.EndOfChannel`, and the child's return value still reaches
    the parent. The parent's own closed stream refuses sends and
    receives with `EndOfChannel` too.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'waiter',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    wait_for_parent_close,
                ) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        for i in range(10):
                            await stream.send(i)

                    assert stream.closed
                    assert isinstance(stream._eoc, trio.EndOfChannel)
                    with pytest.raises(trio.EndOfChannel):
                        await stream.send('after close')
                    with pytest.raises(trio.EndOfChannel):
                        await stream.receive()

                    report = await ctx.wait_for_result()

                assert report == {
                    'for_else_ran': True,
                    'got': list(range(10)),
                    'receive_after_eoc': 'EndOfChannel',
                    'send_after_eoc': 'EndOfChannel',
                    'closed': True,
                    'eoc_stored': True,
                }
                assert ctx.maybe_error is None
                await portal.cancel_actor()

    trio.run(main)


def test_child_closes_stream_first(reg_addr, start_method):
    '''
    The child leaves its stream block first: the parent's `async for`
    ends after the last item, every later `receive()` raises
    `trio.EndOfChannel`, a `send()` raises the stored EoC, and the
    child's result arrives at block exit.

    '''
    count = 20

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'closer',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    close_first,
                    count=count,
                ) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        got = [i async for i in stream]
                        assert got == list(range(count))

                        for _ in range(2):
                            with pytest.raises(trio.EndOfChannel):
                                await stream.receive()
                        with pytest.raises(trio.EndOfChannel):
                            await stream.send('into an ended stream')
                        assert stream.closed

                assert ctx.outcome == 'child closed first'
                assert await ctx.wait_for_result() == 'child closed first'
                await portal.cancel_actor()

    trio.run(main)


def test_break_then_child_result(reg_addr, start_method):
    '''
    The parent breaks out of an `async for` early; the stream closes
    on block exit and the child's generator-like loop finishes.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'echoer',
                    enable_modules=[__name__],
                )
                async with portal.open_context(echo_server) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        for i in range(5):
                            await stream.send(i)
                        seen = []
                        async for i in stream:
                            seen.append(i)
                            if i == 4:
                                break
                    assert seen == list(range(5))
                    assert await ctx.wait_for_result() == 5

                await portal.cancel_actor()

    trio.run(main)


@pytest.mark.parametrize(
    'window',
    # the flow-control window must stay below the feeder size (64)
    [0, 50],
    ids=['allow_overruns', 'flow_control'],
)
def test_10k_child_to_parent(reg_addr, start_method, window):
    '''
    10,000 messages child -> parent with none lost or reordered, either
    with the receiving (parent) side allowing overruns or with an
    explicit ack every `window` items.

    '''
    count = 10_000

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'bulk',
                    enable_modules=[__name__],
                )
                got: list[int] = []
                async with (
                    portal.open_context(
                        bulk_sender,
                        count=count,
                        window=window,
                        allow_overruns=not window,
                    ) as (ctx, _),
                    ctx.open_stream(allow_overruns=not window) as stream,
                ):
                    async for i in stream:
                        got.append(i)
                        if window and len(got) % window == 0:
                            await stream.send(i)

                assert len(got) == count
                assert got == list(range(count))
                assert await ctx.wait_for_result() == count
                await portal.cancel_actor()

    trio.run(main)


def test_10k_parent_to_child(reg_addr, start_method):
    '''
    10,000 messages parent -> child into a child stream that allows
    overruns: all arrive in order.

    '''
    count = 10_000

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'bulk',
                    enable_modules=[__name__],
                )
                async with portal.open_context(bulk_receiver) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        assert await stream.receive() == 'ready'
                        for i in range(count):
                            await stream.send(i)

                    n, in_order = await ctx.wait_for_result()

                assert n == count
                assert in_order
                await portal.cancel_actor()

    trio.run(main)
