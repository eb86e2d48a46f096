'''
What running trio as an asyncio guest costs: `to_asyncio.run_task()` of a
no-op, a `LinkedTaskChannel` echo round trip, a bare trio checkpoint in
guest mode next to plain `trio.run()`, and `Portal.run(noop)` into an
`infect_asyncio=True` child next to a plain one. Run with bytecode
compiled:

    UV_COMPILE_BYTECODE=1 uv run python bench/asyncio_guest.py [--tpt-proto uds]
'''
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Awaitable, Callable

import trio

import tractor
from tractor import to_asyncio


async def noop() -> None:
    return None


async def aio_noop() -> None:
    return None


async def aio_echo(chan: to_asyncio.LinkedTaskChannel) -> None:
    chan.started_nowait(None)
    while True:
        chan.send_nowait(await chan.get())


async def timed(rounds: int, step: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await step()
        samples.append(time.perf_counter() - start)
    return samples


def row(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    print(
        f'{label:<44} median {statistics.median(ordered) * 1e6:7.0f} us'
        f'   p90 {ordered[int(len(ordered) * 0.9)] * 1e6:7.0f} us'
    )


async def run_task_noop() -> None:
    await to_asyncio.run_task(aio_noop)


async def in_guest(rounds: int) -> None:
    row('to_asyncio.run_task(noop)', await timed(rounds, run_task_noop))
    async with to_asyncio.open_channel_from(aio_echo) as (chan, _):
        async def echo() -> None:
            await chan.send(1)
            await chan.receive()
        row('LinkedTaskChannel echo round trip', await timed(rounds, echo))
    row('trio.sleep(0), guest of asyncio', await timed(rounds, lambda: trio.sleep(0)))


async def plain(rounds: int, proto: str) -> None:
    row('trio.sleep(0), plain trio.run()', await timed(rounds, lambda: trio.sleep(0)))
    async with tractor.open_nursery(enable_transports=[proto]) as an:
        for infect in (False, True):
            portal = await an.start_actor(
                f'bench_{int(infect)}', enable_modules=[__name__], infect_asyncio=infect,
            )
            await timed(100, lambda: portal.run(noop))
            row(
                f'Portal.run(noop), {proto}, infect_asyncio={infect}',
                await timed(rounds, lambda: portal.run(noop)),
            )
        await an.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--rounds', type=int, default=2000)
    parser.add_argument('--tpt-proto', default='tcp', choices=['tcp', 'uds'])
    args = parser.parse_args()
    to_asyncio.run_as_asyncio_guest(in_guest, args.rounds)
    assert asyncio._get_running_loop() is None
    trio.run(plain, args.rounds, args.tpt_proto)


if __name__ == '__main__':
    main()
