'''
Several concurrent streams over one portal.

Every `open_stream_from()` call starts its own task in the remote actor,
so two consumers streaming the same generator over the same portal get
identical, independent copies of the data.

'''
import warnings

import trio
import tractor

# legacy streaming API on purpose (see `asynchronous_generators.py`)
warnings.filterwarnings('ignore', category=DeprecationWarning)


async def squares(count: int):
    for i in range(count):
        yield i * i
        await trio.sleep(0.001)


async def main() -> None:
    results: dict[str, list[int]] = {}

    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'squarer',
            enable_modules=[__name__],
        )

        async def consume(label: str) -> None:
            async with portal.open_stream_from(squares, count=50) as stream:
                results[label] = [value async for value in stream]

        # two consumers, one portal, at the same time
        async with trio.open_nursery() as tn:
            tn.start_soon(consume, 'first')
            tn.start_soon(consume, 'second')

        await portal.cancel_actor()

    assert results['first'] == results['second'] == [i * i for i in range(50)]
    print(f"both streams got the same {len(results['first'])} values")


if __name__ == '__main__':
    trio.run(main)
