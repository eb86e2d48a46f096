'''
Streaming throughput through a `MsgStream`: one-way messages/s (child
-> parent) and echo round trips/s (parent -> child -> parent), for every
spawn backend that works on this host and for both transports. Prints a
table; run with bytecode compiled:

    UV_COMPILE_BYTECODE=1 uv run python bench/streaming.py [-n 50000] [-r 5000]

Backends whose `try_set_start_method()` raises `RuntimeError` (not
usable here) are skipped and listed as such.
'''
from __future__ import annotations

import argparse
import sys
import time

import trio

import tractor
from tractor.spawn._spawn import try_set_start_method

BACKENDS = ('trio', 'mp_spawn', 'mp_forkserver', 'subint')
PROTOS = ('tcp', 'uds')


@tractor.context
async def produce(ctx: tractor.Context, count: int) -> int:
    '''Send `0..count-1` as fast as the stream takes them.'''
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(count):
            await stream.send(i)
    return count


@tractor.context
async def echo(ctx: tractor.Context) -> int:
    '''Send back everything until the parent closes its side.'''
    await ctx.started()
    n = 0
    async with ctx.open_stream() as stream:
        async for msg in stream:
            await stream.send(msg)
            n += 1
    return n


async def one_way(portal: tractor.Portal, count: int) -> float:
    '''Messages/s received by the parent (buffering allowed: no overruns).'''
    async with portal.open_context(
        produce,
        count=count,
        allow_overruns=True,
    ) as (ctx, _):
        async with ctx.open_stream(allow_overruns=True) as stream:
            start = time.perf_counter()
            expect = 0
            async for i in stream:
                assert i == expect
                expect += 1
            elapsed = time.perf_counter() - start
        assert expect == count
        assert await ctx.wait_for_result() == count
    return count / elapsed


async def round_trips(portal: tractor.Portal, rounds: int) -> float:
    '''Echo round trips/s, one message in flight at a time.'''
    async with portal.open_context(echo) as (ctx, _):
        async with ctx.open_stream() as stream:
            for i in range(100):  # warm up
                await stream.send(i)
                await stream.receive()
            start = time.perf_counter()
            for i in range(rounds):
                await stream.send(i)
                assert await stream.receive() == i
            elapsed = time.perf_counter() - start
        assert await ctx.wait_for_result() == rounds + 100
    return rounds / elapsed


async def bench_one(
    backend: str,
    proto: str,
    count: int,
    rounds: int,
) -> tuple[float, float]:
    from tractor._testing.addr import get_rando_addr
    async with tractor.open_nursery(
        # a registrar of our own, never one already serving the default address
        registry_addrs=[get_rando_addr(proto)],
        start_method=backend,
        enable_transports=[proto],
    ) as an:
        portal = await an.start_actor('bench', enable_modules=[__name__])
        await one_way(portal, 1000)  # warm up
        msgs_per_s = await one_way(portal, count)
        rtts_per_s = await round_trips(portal, rounds)
        await portal.cancel_actor()
    return msgs_per_s, rtts_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('-n', '--count', type=int, default=50_000,
                        help='one-way messages per run')
    parser.add_argument('-r', '--rounds', type=int, default=5_000,
                        help='echo round trips per run')
    parser.add_argument('--backends', nargs='+', default=list(BACKENDS))
    parser.add_argument('--protos', nargs='+', default=list(PROTOS))
    args = parser.parse_args()

    print(
        f'MsgStream throughput (python {sys.version.split()[0]}, '
        f'one-way n={args.count}, echo n={args.rounds})'
    )
    header = f"{'backend':<15}{'tpt':<6}{'one-way msgs/s':>16}{'echo rtt/s':>14}{'rtt us':>10}"
    print(header)
    print('-' * len(header))
    for backend in args.backends:
        try:
            try_set_start_method(backend)
        except RuntimeError as err:
            print(f'{backend:<15}{"-":<6}  skipped: {err}')
            continue
        for proto in args.protos:
            try:
                msgs, rtts = trio.run(
                    bench_one, backend, proto, args.count, args.rounds,
                )
            except Exception as err:
                print(f'{backend:<15}{proto:<6}  failed: {type(err).__name__}: {err}'[:200])
                continue
            print(
                f'{backend:<15}{proto:<6}{msgs:>16,.0f}{rtts:>14,.0f}'
                f'{1e6 / rtts:>10.1f}'
            )
    # leave the default backend selected
    try_set_start_method('trio')


if __name__ == '__main__':
    main()
