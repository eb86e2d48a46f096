'''
RPC round-trip latency: `Portal.run()` of a no-op function in a child
actor, next to a raw trio ping-pong over the same kind of socket (the floor
any IPC layer sits on). Prints a table; run with bytecode compiled:

    UV_COMPILE_BYTECODE=1 uv run python bench/rpc_roundtrip.py [--tpt-proto uds]
'''
from __future__ import annotations

import argparse
import socket
import statistics
import time

import trio

import tractor


async def noop() -> None:
    return None


async def raw_pingpong(rounds: int, proto: str) -> list[float]:
    '''Round trips of 1-byte messages over a socketpair-like connection.'''
    if proto == 'uds':
        left, right = trio.socket.socketpair(socket.AF_UNIX)
    else:
        listener = trio.socket.socket()
        await listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        left = trio.socket.socket()
        await left.connect(listener.getsockname())
        right, _ = await listener.accept()
        listener.close()
    a, b = trio.SocketStream(left), trio.SocketStream(right)

    async def echo() -> None:
        while data := await b.receive_some(64):
            await b.send_all(data)

    times: list[float] = []
    async with trio.open_nursery() as tn:
        tn.start_soon(echo)
        for _ in range(rounds):
            start = time.perf_counter()
            await a.send_all(b'x')
            await a.receive_some(64)
            times.append(time.perf_counter() - start)
        await a.aclose()
    await b.aclose()
    return times


async def rpc_roundtrips(rounds: int, proto: str) -> list[float]:
    times: list[float] = []
    async with tractor.open_nursery(enable_transports=[proto]) as an:
        portal = await an.start_actor('bench', enable_modules=[__name__])
        for _ in range(100):  # warm up
            await portal.run(noop)
        for _ in range(rounds):
            start = time.perf_counter()
            await portal.run(noop)
            times.append(time.perf_counter() - start)
        await portal.cancel_actor()
    return times


def row(label: str, times: list[float]) -> str:
    us = [t * 1e6 for t in times]
    return (
        f'{label:<28} {statistics.median(us):>10.1f} {statistics.mean(us):>10.1f} '
        f'{sorted(us)[int(len(us) * .99)]:>10.1f}'
    )


async def main(rounds: int, proto: str) -> None:
    raw = await raw_pingpong(rounds, proto)
    rpc = await rpc_roundtrips(rounds, proto)
    print(f'round trips over {proto}, n={rounds}')
    print(f'{"":<28} {"median µs":>10} {"mean µs":>10} {"p99 µs":>10}')
    print(row('raw trio ping-pong', raw))
    print(row('tractor Portal.run(noop)', rpc))


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('--rounds', type=int, default=2000)
    parser.add_argument('--tpt-proto', default='tcp', choices=['tcp', 'uds'])
    args = parser.parse_args()
    trio.run(main, args.rounds, args.tpt_proto)
