'''
Fan-out of one `MsgStream` to several local tasks with
`MsgStream.subscribe()`, plus the underlying
`tractor.trionics.broadcast_receiver()` semantics (lag, closing,
cancelled pullers) on a plain trio memory channel.

'''
import pytest
import trio
import tractor
import tractor.trionics
# the public home of these names is `tractor.trionics` (checked by
# `test_public_names` below); import from the implementation module so
# the rest of this file runs either way
from tractor.trionics._broadcast import (
    BroadcastReceiver,
    Lagged,
    broadcast_receiver,
)
from tractor._testing import nursery_kwargs


def test_public_names():
    for name in (
        'BroadcastReceiver',
        'Lagged',
        'broadcast_receiver',
        'AsyncReceiver',
    ):
        assert hasattr(tractor.trionics, name), name
    assert tractor.trionics.BroadcastReceiver is BroadcastReceiver
    assert tractor.trionics.Lagged is Lagged


# ---- child-side endpoints ----

@tractor.context
async def stream_n(
    ctx: tractor.Context,
    n: int,
    delay: float = 0.001,
) -> int:
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(n):
            await stream.send(i)
            await trio.sleep(delay)
    return n


@tractor.context
async def echo(ctx: tractor.Context) -> None:
    await ctx.started()
    async with ctx.open_stream() as stream:
        async for msg in stream:
            await stream.send(msg)


# ---- across actors ----

def test_three_subscribers_see_every_value(reg_addr, start_method):
    '''
    Three local consumer tasks subscribed to one stream each get every
    value, in order, and each `async for` ends when the child ends
    its stream.

    '''
    n = 50

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'streamer',
                    enable_modules=[__name__],
                )
                seen: dict[int, list[int]] = {}

                async with (
                    portal.open_context(stream_n, n=n) as (ctx, _),
                    ctx.open_stream() as stream,
                ):
                    async def consume(
                        k: int,
                        task_status=trio.TASK_STATUS_IGNORED,
                    ):
                        async with stream.subscribe() as sub:
                            assert isinstance(sub, BroadcastReceiver)
                            assert sub is not stream
                            seen[k] = []
                            task_status.started()
                            # values received before a subscription are
                            # not replayed: read once all are in
                            await all_in.wait()
                            async for i in sub:
                                seen[k].append(i)

                    all_in = trio.Event()
                    async with trio.open_nursery() as tn:
                        for k in range(3):
                            await tn.start(consume, k)
                        all_in.set()

                    assert stream._broadcaster is not None

                assert await ctx.wait_for_result() == n
                assert seen == {k: list(range(n)) for k in range(3)}
                await portal.cancel_actor()

    trio.run(main)


def test_subscriber_send_and_stream_receive_rewired(reg_addr, start_method):
    '''
    A subscriber's `send()` goes to the peer; after the first
    `subscribe()` the stream's own `receive()` is a broadcast consumer
    too, so the stream task and two subscribers all see each echo.

    '''
    rounds = 20

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'echoer',
                    enable_modules=[__name__],
                )
                seen: dict[str, list[int]] = {'a': [], 'b': [], 'main': []}

                async with (
                    portal.open_context(echo) as (ctx, _),
                    ctx.open_stream() as stream,
                ):
                    ready = trio.Event()
                    done = {'a': trio.Event(), 'b': trio.Event()}

                    async def consume(key: str, sub):
                        async for i in sub:
                            seen[key].append(i)
                            if i == rounds - 1:
                                done[key].set()
                                return

                    async with (
                        stream.subscribe() as sub_a,
                        stream.subscribe() as sub_b,
                        trio.open_nursery() as tn,
                    ):
                        assert sub_a is not sub_b
                        tn.start_soon(consume, 'a', sub_a)
                        tn.start_soon(consume, 'b', sub_b)
                        ready.set()
                        for i in range(rounds):
                            # send through a subscriber, read via the stream
                            await sub_a.send(i)
                            seen['main'].append(await stream.receive())
                        for ev in done.values():
                            await ev.wait()

                expect = list(range(rounds))
                assert seen == {'a': expect, 'b': expect, 'main': expect}
                await portal.cancel_actor()

    trio.run(main)


# ---- `broadcast_receiver()` on a local memory channel ----

def test_local_fanout_and_eoc():
    '''Every subscriber gets every value; EoC ends all of them.'''
    async def main():
        with trio.fail_after(5):
            send, recv = trio.open_memory_channel(0)
            br = broadcast_receiver(recv, 10)
            results: dict[int, list[int]] = {}

            async def consume(k: int, task_status=trio.TASK_STATUS_IGNORED):
                async with br.subscribe() as sub:
                    results[k] = []
                    task_status.started()
                    async for i in sub:
                        results[k].append(i)

            async with trio.open_nursery() as tn:
                for k in range(3):
                    await tn.start(consume, k)
                async with send:
                    for i in range(100):
                        await send.send(i)

            assert results == {k: list(range(100)) for k in range(3)}
            assert br._state.eoc

    trio.run(main)


def test_local_lagged_subscriber():
    '''
    A subscriber that falls more than the buffer behind raises `Lagged`
    once and then resumes at the oldest value still kept.

    '''
    async def main():
        with trio.fail_after(5):
            send, recv = trio.open_memory_channel(100)
            br = broadcast_receiver(recv, 4)
            async with br.subscribe() as slow:
                for i in range(10):
                    send.send_nowait(i)
                # the (fast) parent receiver pulls all ten values
                assert [await br.receive() for _ in range(10)] == list(range(10))

                with pytest.raises(Lagged):
                    await slow.receive()
                assert issubclass(Lagged, trio.TooSlowError)
                # re-positioned at the oldest retained value
                assert [await slow.receive() for _ in range(4)] == [6, 7, 8, 9]

            async with br.subscribe(raise_on_lag=False) as tolerant:
                for i in range(10, 20):
                    send.send_nowait(i)
                    await br.receive()
                # no error: skips ahead to what is retained
                assert await tolerant.receive() == 16

    trio.run(main)


def test_local_closed_receiver():
    async def main():
        with trio.fail_after(5):
            send, recv = trio.open_memory_channel(10)
            br = broadcast_receiver(recv, 10)
            async with br.subscribe() as sub:
                key = sub.key
                assert key in br._state.subs
            assert key not in br._state.subs
            with pytest.raises(trio.ClosedResourceError):
                await sub.receive()

            await br.aclose()
            with pytest.raises(trio.ClosedResourceError):
                async with br.subscribe():
                    pass

    trio.run(main)


def test_local_cancelled_puller_hands_over():
    '''
    If the task currently pulling from the underlying channel is
    cancelled, another waiting subscriber takes over the pull.

    '''
    async def main():
        with trio.fail_after(5):
            send, recv = trio.open_memory_channel(0)
            br = broadcast_receiver(recv, 10)
            got: list[int] = []

            async with br.subscribe() as puller, br.subscribe() as waiter:
                async with trio.open_nursery() as tn:
                    puller_cs = trio.CancelScope()

                    async def pull():
                        with puller_cs:
                            await puller.receive()

                    async def wait():
                        got.append(await waiter.receive())

                    tn.start_soon(pull)
                    await trio.sleep(0.05)
                    assert br._state.recv_ready is not None
                    assert br._state.recv_ready[0] == puller.key

                    tn.start_soon(wait)
                    await trio.sleep(0.05)
                    puller_cs.cancel()
                    await trio.sleep(0.05)
                    await send.send(42)

            assert got == [42]

    trio.run(main)
