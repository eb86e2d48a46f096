'''
Publish/subscribe by topic with `tractor.experimental.msgpub`.

A publisher actor turns one async generator into a shared feed: each
subscriber streams it with `Portal.open_stream_from(..., topics=[...])`
and receives only the topics it asked for, while a single producer task
(started by the first subscriber, stopped after the last) computes the
packets for all of them.

'''
import warnings

import trio
import tractor
from tractor.experimental import msgpub

# the subscribers use the legacy one-way streaming API
warnings.filterwarnings('ignore', category=DeprecationWarning)


@msgpub
async def squares_and_cubes(get_topics):
    '''Yields `{topic: value}` packets for the topics subscribed to.'''
    # (for a deterministic demo: wait until both subscribers are in)
    while len(get_topics()) < 2:
        await trio.sleep(0.01)
    for n in range(1, 6):
        packet = {}
        for topic in get_topics():
            packet[topic] = n * n if topic == 'square' else n ** 3
        yield packet
        await trio.sleep(0.05)


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor('publisher', enable_modules=[__name__])
        received: dict[str, list] = {}

        async def subscriber(name: str, topics: list[str]) -> None:
            async with portal.open_stream_from(
                squares_and_cubes, topics=topics,
            ) as stream:
                received[name] = [packet async for packet in stream]

        async with trio.open_nursery() as tn:
            tn.start_soon(subscriber, 'squarer', ['square'])
            tn.start_soon(subscriber, 'cuber', ['cube'])

        await portal.cancel_actor()

    print('squarer got:', [p['square'] for p in received['squarer']])
    print('cuber got:', [p['cube'] for p in received['cuber']])


if __name__ == '__main__':
    trio.run(main)
