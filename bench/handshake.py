'''
What peer authentication costs: a connection to a child actor's
listener with and without the authenticated handshake, the HMAC alone,
and where that lands in a spawn and next to an RPC. Prints a table; run
with bytecode compiled:

    UV_COMPILE_BYTECODE=1 uv run python bench/handshake.py [--tpt-proto uds] [-n 1000]

Rows (all timed in the root actor, against one `trio`-backend child):

- raw connect: a bare trio socket connected to the child's listener and
  closed again (the floor; the child starts a handshake nobody answers),
- `Channel.from_addr`: the same through tractor's transport `connect()`
  (TCP: `trio.open_tcp_stream`, which also sets `TCP_NODELAY`),
- connect + handshake: `Channel.from_addr()` then `_do_handshake()` with
  a probe `Aid` (as `discovery._api._probe_registry` does) and the
  tree's real secret, then close; the child drops a probe right after
  the handshake, so nothing but the handshake is measured,
- `_auth._mac`: one HMAC-SHA256 over a proof's input, per call (batches
  of 100; each handshake computes four of them, two on each side),
- spawn -> first `Portal.run(noop)`: `start_actor()` until the first
  answer, each child reaped before the next (`bench/run.py --only spawn`
  has the per-backend view),
- `Portal.run(noop)`: the steady-state round trip on an open channel.

The three connection rows run interleaved, one of each per round (see
`connections()`).

The handshake's added cost is its median minus the raw connect's. A
spawn runs two handshakes before its first RPC answers (the child's
connect-back to its parent, then its connection to the registrar to
register), so the last line puts twice that cost next to the spawn.

Measured on the 2-core dev box (python 3.14.10, trio backend, box
otherwise idle):

    handshake cost over tcp (median / p90; n=1000, spawns=8, rpc=2000)
                                           median          p90
    raw connect + close                  102.3 µs     138.7 µs
    Channel.from_addr + close            269.0 µs     376.4 µs
    connect + handshake + close          569.3 µs     718.4 µs
    _auth._mac (one HMAC-SHA256)           1.5 µs       2.5 µs
    spawn -> first Portal.run(noop)      253.7 ms     268.0 ms
    Portal.run(noop) round trip          298.7 µs     424.7 µs
    handshake adds 467.0 µs per connection over a raw connect (300.3 µs over Channel.from_addr), medians: under 1 ms
    2 handshakes per spawn: ~934 µs, 0.4% of the spawn median

    handshake cost over uds (median / p90; n=1000, spawns=8, rpc=2000)
                                           median          p90
    raw connect + close                   54.7 µs      73.7 µs
    Channel.from_addr + close             97.2 µs     152.5 µs
    connect + handshake + close          519.5 µs     823.8 µs
    _auth._mac (one HMAC-SHA256)           1.5 µs       1.6 µs
    spawn -> first Portal.run(noop)      234.1 ms     255.4 ms
    Portal.run(noop) round trip          275.5 µs     370.4 µs
    handshake adds 464.8 µs per connection over a raw connect (422.3 µs over Channel.from_addr), medians: under 1 ms
    2 handshakes per spawn: ~930 µs, 0.4% of the spawn median

Over a dozen runs the added cost ranged 0.45-0.7 ms on either transport
(the upper end with test runs sharing the cores); p90s on this VM jump
to 1-2 ms now and then. The four HMACs (two on each side) are ~6 µs of
it. The rest is two round trips through two trio loops, the accept and
a task on the child's side, and four small messages, i.e. a bit more
than one `Portal.run()`. On TCP, `trio.open_tcp_stream` alone costs
~170 µs more than a bare socket connect.
'''
from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import msgspec
import trio

import tractor
from tractor.ipc import _auth
from tractor.ipc._addr import wrap_address
from tractor.ipc._chan import Channel
from tractor.ipc._uds import UDSAddress
from tractor.msg.types import Aid


async def noop() -> None:
    return None


async def listen_addrs() -> list:
    '''Where this (child) actor accepts connections.'''
    return tractor.current_actor().accept_addrs


def _probe_aid() -> Aid:
    # a probe identity (as `discovery._api._probe_registry` uses): the
    # child closes the channel right after the handshake instead of
    # serving it as a peer
    return Aid(
        name='handshake-bench',
        uuid=str(uuid.uuid4()),
        pid=os.getpid(),
        is_probe=True,
    )


async def raw_connect(addr: object) -> float:
    '''A bare socket connect + close, no byte sent or read.'''
    if isinstance(addr, UDSAddress):
        family, target = trio.socket.AF_UNIX, str(addr.sockpath)
    else:
        family, target = trio.socket.AF_INET, addr.unwrap()
    start = time.perf_counter()
    sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
    await sock.connect(target)
    sock.close()
    return time.perf_counter() - start


async def chan_connect(addr: object) -> float:
    '''Connect through the transport's `connect()` and close, no handshake.'''
    start = time.perf_counter()
    chan = await Channel.from_addr(addr)
    await chan.aclose()
    return time.perf_counter() - start


async def handshake(addr: object, probe: Aid) -> float:
    '''Connect, authenticate with the tree's secret, close.'''
    start = time.perf_counter()
    chan = await Channel.from_addr(addr)
    try:
        peer = await chan._do_handshake(probe)
    finally:
        await chan.aclose()
    took = time.perf_counter() - start
    assert peer.name == 'target', peer
    return took


async def connections(addr: object, rounds: int) -> dict[str, list[float]]:
    '''
    The three kinds of connection, interleaved (rotating the order each
    round). Back to back, the child could not keep up with connections
    that never handshake: its half-done handshakes would pile up until
    it refuses new ones (`MAX_PENDING_HANDSHAKES`); the handshake in
    every round waits for the child's loop, so the backlog stays small,
    and any drift of the machine hits all three rows alike.
    '''
    probe = _probe_aid()
    kinds = [
        ('raw connect + close', lambda: raw_connect(addr)),
        ('Channel.from_addr + close', lambda: chan_connect(addr)),
        ('connect + handshake + close', lambda: handshake(addr, probe)),
    ]
    times: dict[str, list[float]] = {label: [] for label, _ in kinds}
    for _ in range(50):  # warm up both ends
        await handshake(addr, probe)
    for i in range(rounds):
        for label, run in kinds[i % 3:] + kinds[:i % 3]:
            times[label].append(await run())
    return times


def mac_times(batches: int, per_batch: int = 100) -> list[float]:
    '''Seconds per `_auth._mac()` call, one sample per batch.'''
    secret = _auth.current_secret()
    aid_bytes = msgspec.msgpack.encode(Aid(
        name='handshake-bench', uuid=str(uuid.uuid4()), pid=os.getpid(),
    ))
    nc, na = os.urandom(_auth.NONCE_SIZE), os.urandom(_auth.NONCE_SIZE)
    times: list[float] = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(per_batch):
            _auth._mac(secret, b'C', nc, na, aid_bytes)
        times.append((time.perf_counter() - start) / per_batch)
    return times


async def spawns(count: int) -> list[float]:
    times: list[float] = []
    for i in range(count):
        # one nursery per spawn: its exit reaps the child, so the next
        # spawn does not share the cores with a teardown
        async with tractor.open_nursery() as an:
            start = time.perf_counter()
            portal = await an.start_actor(f'spawned{i}', enable_modules=[__name__])
            await portal.run(noop)
            times.append(time.perf_counter() - start)
            await portal.cancel_actor()
    return times


async def rpc_roundtrips(portal: tractor.Portal, rounds: int) -> list[float]:
    for _ in range(100):  # warm up
        await portal.run(noop)
    times: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        await portal.run(noop)
        times.append(time.perf_counter() - start)
    return times


def median(times: list[float]) -> float:
    return statistics.median(times)


def p90(times: list[float]) -> float:
    return sorted(times)[int(len(times) * .9)]


def fmt(seconds: float) -> str:
    if seconds >= 1e-2:
        return f'{seconds * 1e3:.1f} ms'
    return f'{seconds * 1e6:.1f} µs'


def row(label: str, times: list[float]) -> str:
    return f'{label:<32} {fmt(median(times)):>12} {fmt(p90(times)):>12}'


async def main(rounds: int, spawn_count: int, rpc_rounds: int, proto: str) -> None:
    from tractor._testing.addr import get_rando_addr
    results: dict[str, list[float]] = {}
    async with tractor.open_nursery(
        # a registrar of our own, never one already serving the default address
        registry_addrs=[get_rando_addr(proto)],
        enable_transports=[proto],
    ) as an:
        portal = await an.start_actor('target', enable_modules=[__name__])
        addr = wrap_address((await portal.run(listen_addrs))[0])

        results.update(await connections(addr, rounds))
        results['_auth._mac (one HMAC-SHA256)'] = mac_times(max(rounds, 200))
        results['spawn -> first Portal.run(noop)'] = await spawns(spawn_count)
        results['Portal.run(noop) round trip'] = await rpc_roundtrips(portal, rpc_rounds)
        await portal.cancel_actor()

    print(
        f'handshake cost over {proto} (median / p90; n={rounds}, '
        f'spawns={spawn_count}, rpc={rpc_rounds})'
    )
    print(f'{"":<32} {"median":>12} {"p90":>12}')
    for label, times in results.items():
        print(row(label, times))
    added = median(results['connect + handshake + close']) - median(
        results['raw connect + close']
    )
    via_chan = median(results['connect + handshake + close']) - median(
        results['Channel.from_addr + close']
    )
    verdict = 'under 1 ms' if added < 1e-3 else 'NOT under 1 ms'
    print(
        f'handshake adds {fmt(added)} per connection over a raw connect '
        f'({fmt(via_chan)} over Channel.from_addr), medians: {verdict}'
    )
    spawn = median(results['spawn -> first Portal.run(noop)'])
    print(
        f'2 handshakes per spawn: ~{2 * added * 1e6:.0f} µs, '
        f'{200 * added / spawn:.1f}% of the spawn median'
    )


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('-n', '--rounds', type=int, default=1000)
    parser.add_argument('--spawns', type=int, default=8)
    parser.add_argument('--rpc-rounds', type=int, default=2000)
    parser.add_argument('--tpt-proto', default='tcp', choices=['tcp', 'uds'])
    args = parser.parse_args()
    trio.run(main, args.rounds, args.spawns, args.rpc_rounds, args.tpt_proto)
