'''
Actors on one host sharing memory instead of messages.

A worker creates a shared list (`open_shm_list()`) and fills it; the
root attaches to it by key (`attach_shm_list()`) and reads the values
in place. The root creates a numpy-backed `ShmArray`, pushes rows, and
the worker reads them without any copy over IPC. Each segment is
removed when the actor that created it exits.

'''
import os

import trio
import tractor
from tractor.ipc._shm import (
    attach_shm_list,
    attach_shm_ndarray,
    open_shm_list,
    open_shm_ndarray,
)

KEY = f'example-squares-{os.getpid()}'
ARRAY_KEY = f'example-prices-{os.getpid()}'


async def compute_squares(key: str, count: int) -> None:
    squares = open_shm_list(key, size=count, dtype=int)
    for i in range(count):
        squares[i] = i * i


async def average_price(key: str) -> float:
    prices = attach_shm_ndarray(key)
    return float(prices.array.mean())


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor('worker', enable_modules=[__name__])

        await portal.run(compute_squares, key=KEY, count=8)
        squares = attach_shm_list(KEY, readonly=True)
        print('squares from shared memory:', list(squares))
        squares.close()

        with open_shm_ndarray(ARRAY_KEY, shape=(100,)) as prices:
            prices.push([10.0, 11.0, 12.0, 13.0])
            print('average seen by the worker:', await portal.run(average_price, key=ARRAY_KEY))

        await portal.cancel_actor()
    print('segments left behind:', os.path.exists(f'/dev/shm/{KEY}'))


if __name__ == '__main__':
    trio.run(main)
