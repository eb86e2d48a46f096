'''
A daemon actor answering several requests.

Unlike `run_in_actor()`, `start_actor()` gives a child with no main task:
it waits for RPC requests (`Portal.run()`) until it is cancelled.

'''
import trio
import tractor


async def shout(words: str) -> str:
    return words.upper() + '!'


async def count_letters(words: str) -> int:
    return sum(ch.isalpha() for ch in words)


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'helper',
            enable_modules=[__name__],
        )

        print(await portal.run(shout, words='structured concurrency'))
        print(await portal.run(count_letters, words='one two three'))

        # without this the daemon would keep the nursery open forever
        await portal.cancel_actor()
        print('helper daemon cancelled')


if __name__ == '__main__':
    trio.run(main)
