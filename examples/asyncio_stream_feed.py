'''
A stream of items produced by an asyncio library, fed into a tractor
stream to the parent.

`tick_feed()` stands for any asyncio library that hands out data as an
async generator (a market feed, a websocket client, ...). The child actor
runs it with `infect_asyncio=True`: `to_asyncio.open_channel_from()`
starts it as an asyncio task whose values arrive on the trio side of a
`LinkedTaskChannel`, and a `@tractor.context` endpoint relays them over
IPC. When the feed ends, the channel ends (`async for` stops), so does the
IPC stream, and the parent gets the child's summary as its result.

'''
import asyncio

import trio
import tractor
from tractor import to_asyncio


async def tick_feed(count: int):
    '''An asyncio "library": yields `count` ticks, a little apart.'''
    for i in range(count):
        await asyncio.sleep(0.001)
        yield {'seq': i, 'price': 100 + i}


async def pump_feed(chan: to_asyncio.LinkedTaskChannel, count: int) -> int:
    chan.started_nowait(count)
    sent = 0
    async for tick in tick_feed(count):
        chan.send_nowait(tick)
        sent += 1
    return sent


@tractor.context
async def stream_ticks(ctx: tractor.Context, count: int) -> str:
    async with to_asyncio.open_channel_from(pump_feed, count=count) as (chan, expected):
        await ctx.started(expected)
        async with ctx.open_stream() as stream:
            # ends once the asyncio feed returned and every tick was relayed
            async for tick in chan:
                await stream.send(tick)
        sent = await chan.wait_for_result()
    return f'feed done after {sent} ticks'


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'aio_feed',
            enable_modules=[__name__],
            infect_asyncio=True,
        )
        async with portal.open_context(stream_ticks, count=50) as (ctx, expected):
            ticks = []
            async with ctx.open_stream() as stream:
                async for tick in stream:
                    ticks.append(tick)
            assert [tick['seq'] for tick in ticks] == list(range(expected))
            total = sum(tick['price'] for tick in ticks)
            print(f'received {len(ticks)} ticks from the asyncio feed, total {total}')
            print(f'child says: {await ctx.wait_for_result()}')

        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
