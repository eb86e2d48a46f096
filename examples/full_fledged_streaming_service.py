'''
A small streaming service tree:

    root
     └─ aggregator          (merges, de-duplicates, re-streams upward)
         ├─ streamer_0      (streams 0..999)
         └─ streamer_1      (streams 0..999)

Both streamers produce the same sequence; the aggregator fans their two
one-way streams in through a trio memory channel, forwards each value
the first time it sees it, and the root checks that the full 1000-item
sequence arrived in order.

'''
import trio
import tractor

COUNT = 1000


@tractor.context
async def stream_range(ctx: tractor.Context, count: int) -> None:
    '''Leaf: stream `0..count-1` to whoever opened us.'''
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(count):
            await stream.send(i)


@tractor.context
async def aggregate(ctx: tractor.Context, count: int) -> int:
    '''Middle tier: spawn two streamers, merge them, send upward.'''
    async with tractor.open_nursery() as an:
        portals = [
            await an.start_actor(f'streamer_{i}', enable_modules=[__name__])
            for i in range(2)
        ]
        send_chan, recv_chan = trio.open_memory_channel(100)

        async def pull(portal, send_chan) -> None:
            # we merge slower than a streamer can send: buffer overruns
            async with (
                send_chan,
                portal.open_context(
                    stream_range,
                    count=count,
                    allow_overruns=True,
                ) as (sctx, _),
                sctx.open_stream() as stream,
            ):
                async for value in stream:
                    await send_chan.send(value)

        await ctx.started([p.chan.aid.name for p in portals])
        forwarded = 0
        async with (
            ctx.open_stream() as upward,
            trio.open_nursery() as tn,
        ):
            async with send_chan:
                for portal in portals:
                    tn.start_soon(pull, portal, send_chan.clone())

            # each value arrives twice (once per streamer): forward it the
            # first time only; both streams are ordered, so is the output
            async for value in recv_chan:
                if value == forwarded:
                    await upward.send(value)
                    forwarded += 1

        # our streamers are done: shut them down
        for portal in portals:
            assert await portal.cancel_actor()

    return forwarded


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'aggregator',
            enable_modules=[__name__],
        )
        received: list[int] = []
        async with portal.open_context(
            aggregate,
            count=COUNT,
            allow_overruns=True,
        ) as (ctx, streamers):
            print(f'aggregator is merging {streamers}')
            async with ctx.open_stream() as stream:
                async for value in stream:
                    received.append(value)

            assert await ctx.wait_for_result() == COUNT

        assert received == list(range(COUNT))
        print(f'received the full sequence of {len(received)} values in order')

        cancelled: bool = await portal.cancel_actor()
        print(f'aggregator cancelled: {cancelled}')
        assert cancelled


if __name__ == '__main__':
    trio.run(main)
