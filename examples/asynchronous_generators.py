'''
Legacy one-way streaming from a remote async generator.

`Portal.open_stream_from()` runs an (infinite) async generator in the
child and streams everything it yields back to us. Leaving the block
(here by breaking out of the loop) cancels the remote generator: the
consumer's scope bounds the producer's lifetime.

New code should prefer `Portal.open_context()` + `Context.open_stream()`;
this API is kept for compatibility and warns with a `DeprecationWarning`.

'''
import warnings

import trio
import tractor

# this example shows the legacy API on purpose: keep stderr clean
warnings.filterwarnings('ignore', category=DeprecationWarning)


async def fibonacci():
    '''Yield Fibonacci numbers forever.'''
    a, b = 0, 1
    while True:
        yield a
        a, b = b, a + b
        await trio.sleep(0.001)


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'fib_streamer',
            enable_modules=[__name__],
        )

        received: list[int] = []
        async with portal.open_stream_from(fibonacci) as stream:
            async for value in stream:
                received.append(value)
                if len(received) == 20:
                    # enough: breaking out cancels the remote generator
                    break

        print(f'first 20 fibonacci numbers: {received}')
        assert received[-1] == 4181

        # the actor is still alive, only its generator task was cancelled
        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
