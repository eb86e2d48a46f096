'''
One expensive resource shared by many tasks of an actor.

`tractor.trionics.maybe_open_context()` keeps one instance per key in
each actor: the first task to ask opens it, every other task gets the
cached one (`cache_hit=True`), and the last task to leave closes it.
`gather_contexts()` opens several such contexts at once.

'''
from contextlib import asynccontextmanager

import trio
import tractor
from tractor.trionics import (
    gather_contexts,
    maybe_open_context,
)

opened: list[str] = []


@asynccontextmanager
async def open_feed(symbol: str):
    '''A stand-in for a costly connection to a data feed.'''
    opened.append(symbol)
    await trio.sleep(0.1)
    yield f'feed<{symbol}>'


async def watch(symbols: list[str], readers: int) -> dict:
    '''Runs in a subactor: `readers` tasks each open every symbol's feed.'''
    hits: list[bool] = []

    async def reader() -> None:
        async with gather_contexts([
            maybe_open_context(open_feed, kwargs={'symbol': sym})
            for sym in symbols
        ]) as feeds:
            hits.extend(hit for hit, _ in feeds)
            await trio.sleep(0.2)

    async with trio.open_nursery() as tn:
        for _ in range(readers):
            tn.start_soon(reader)
    return {'opened': opened, 'cache_hits': sum(hits), 'opens': len(hits)}


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.run_in_actor(
            watch, symbols=['btc', 'eth'], readers=5, name='watcher',
        )
        stats = await portal.wait_for_result()
    print(f"feeds opened: {sorted(stats['opened'])}")
    print(f"{stats['cache_hits']} of {stats['opens']} opens were cache hits")


if __name__ == '__main__':
    trio.run(main)
