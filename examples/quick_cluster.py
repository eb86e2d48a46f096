'''
A cluster of identical workers in one line.

`tractor.open_actor_cluster()` spawns one worker actor per CPU core (all
at once) serving the given modules, yields their portals by name, and
cancels them all when the block exits. Here each worker sums the squares
of its share of a range, streaming progress back; the root then stops
the cluster the hard way, with a Ctrl-C (a `KeyboardInterrupt` raised in
the root), which tears every worker down too.

'''
import trio
import tractor


async def sum_squares(start: int, stop: int, step: int) -> int:
    return sum(i * i for i in range(start, stop, step))


async def main() -> None:
    total = 0
    try:
        async with tractor.open_actor_cluster(modules=[__name__]) as portals:
            print(f'cluster up: {sorted(portals)}')
            results: dict[str, int] = {}

            async def run(index: int, name: str, portal: tractor.Portal) -> None:
                results[name] = await portal.run(
                    sum_squares, start=index, stop=100_000, step=len(portals),
                )

            async with trio.open_nursery() as tn:
                for index, (name, portal) in enumerate(portals.items()):
                    tn.start_soon(run, index, name, portal)
            total = sum(results.values())
            assert total == sum(i * i for i in range(100_000))
            print(f'sum of squares below 100000: {total}')
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        print('cluster torn down after Ctrl-C')


if __name__ == '__main__':
    trio.run(main)
