'''
The same function, in two processes at once.

A CPU-bound function runs in a subactor while the root runs it too; the
two computations overlap in time because they live in different
processes. The child reports its pid to prove it ran elsewhere.

'''
import os
import time

import trio
import tractor


async def crunch(limit: int) -> dict:
    started = time.monotonic()
    # plain CPU work: sum of squares modulo a prime
    acc = 0
    for i in range(limit):
        acc = (acc + i * i) % 1_000_003
    return {
        'pid': os.getpid(),
        'result': acc,
        'secs': round(time.monotonic() - started, 3),
    }


async def main() -> None:
    limit = 2_000_000
    async with tractor.open_nursery() as an:
        portal = await an.run_in_actor(crunch, name='cruncher', limit=limit)

        # meanwhile, the same work here in the root
        here = await crunch(limit)
        there = await portal.wait_for_result()

    print(f'root  (pid {here["pid"]}): {here["result"]} in {here["secs"]}s')
    print(f'child (pid {there["pid"]}): {there["result"]} in {there["secs"]}s')
    assert here['result'] == there['result']
    assert here['pid'] != there['pid']
    print('same answer from two processes')


if __name__ == '__main__':
    trio.run(main)
