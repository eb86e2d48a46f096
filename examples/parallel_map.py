'''
Parallel map over a pool of one-shot actors.

Each chunk of the input range is handed to its own subactor with
`ActorNursery.run_in_actor()`; the subactors crunch numbers in their own
processes (so on separate CPU cores) and the root gathers the results in
input order with `Portal.wait_for_result()`.

'''
import trio
import tractor


def collatz_length(n: int) -> int:
    '''
    Number of steps the Collatz sequence starting at `n` needs to reach 1.

    '''
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


async def longest_chain(start: int, stop: int) -> list[int]:
    '''
    Runs inside a subactor: return `[number, chain_length]` for the
    number in `range(start, stop)` with the longest Collatz chain.

    (Tuples travel as lists over msgpack, so return a list directly.)

    '''
    best = max(range(start, stop), key=collatz_length)
    return [best, collatz_length(best)]


async def main() -> None:
    chunk: int = 10_000
    bounds = [(i * chunk + 1, (i + 1) * chunk + 1) for i in range(4)]

    async with tractor.open_nursery() as an:
        # fan out: one actor per chunk, all running at the same time
        portals = [
            await an.run_in_actor(
                longest_chain,
                name=f'mapper_{i}',
                start=start,
                stop=stop,
            )
            for i, (start, stop) in enumerate(bounds)
        ]

        # fan in, in the same order the work was handed out
        results = [await portal.wait_for_result() for portal in portals]

    for (start, stop), (best, length) in zip(bounds, results):
        print(f'[{start}, {stop}): {best} takes {length} steps')

    # double check one chunk locally
    start, stop = bounds[0]
    assert results[0] == [
        max(range(start, stop), key=collatz_length),
        max(map(collatz_length, range(start, stop))),
    ]
    print('parallel map done: 4 chunks')


if __name__ == '__main__':
    trio.run(main)
