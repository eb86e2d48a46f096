'''
Spawn latency per spawn backend: how long until a new actor answers its
first RPC (`start_actor()` + one `Portal.run()` of a no-op), measured

- first: the first spawn of a fresh process (includes starting any
  helper: the forkserver, the resource tracker),
- sequential: mean / median of N more spawns, one at a time (each child
  is cancelled and reaped before the next one starts),
- concurrent: N spawns at once, the wall time until all answered,
- nested: a child spawning N grandchildren one at a time (first and
  mean), which shows whether grandchildren reuse the root's forkserver.

Each backend runs in a fresh interpreter (a cold first spawn). Backends
that cannot run here (`try_set_start_method()` raises `RuntimeError`,
e.g. `subint` before Python 3.14 or before it exists) are skipped.
`mp_forkserver/own` is `mp_forkserver` with every parent starting its
own forkserver instead of sharing the root's (`_mp.SHARE_FORKSERVER`).

    UV_COMPILE_BYTECODE=1 uv run python bench/spawn_latency.py [-n 10] [--tpt-proto uds]

The `tractor` sources are byte-compiled first (`compileall`), since
`PYTHONDONTWRITEBYTECODE=1` would otherwise make every child compile them
again and the numbers would mostly measure the compiler.
'''
from __future__ import annotations

import argparse
import compileall
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import typing

import trio

import tractor
from tractor.spawn import _spawn


async def noop() -> int:
    return os.getpid()


async def spawn_until_ready(an: tractor.ActorNursery, name: str) -> float:
    '''Seconds from asking for a child to its first answer; then reap it.'''
    start = time.perf_counter()
    portal = await an.start_actor(name, enable_modules=[__name__])
    await portal.run(noop)
    took = time.perf_counter() - start
    await portal.cancel_actor()
    return took


async def sequential(count: int, prefix: str) -> list[float]:
    times: list[float] = []
    for i in range(count):
        # a nursery per spawn: its exit waits until the child is reaped,
        # so the next spawn does not share the cores with a teardown
        async with tractor.open_nursery() as an:
            times.append(await spawn_until_ready(an, f'{prefix}{i}'))
    return times


async def concurrent(count: int) -> float:
    async with tractor.open_nursery() as an:
        start = time.perf_counter()
        portals: list[tractor.Portal] = []

        async def one(i: int) -> None:
            portal = await an.start_actor(f'conc{i}', enable_modules=[__name__])
            await portal.run(noop)
            portals.append(portal)

        async with trio.open_nursery() as tn:
            for i in range(count):
                tn.start_soon(one, i)
        took = time.perf_counter() - start
        await an.cancel()
    return took


async def nested(count: int) -> list[float]:
    '''Run in a child: spawn grandchildren one at a time.'''
    return await sequential(count, 'grandchild')


async def run_backend(backend: str, count: int, proto: str) -> dict:
    from tractor._testing.addr import get_rando_addr
    reg_addr = get_rando_addr(proto)
    async with tractor.open_nursery(
        start_method=backend,
        registry_addrs=[reg_addr],
        enable_transports=[proto],
    ) as an:
        first, *seq = await sequential(count + 1, 'seq')
        conc = await concurrent(count)
        portal = await an.start_actor('nester', enable_modules=[__name__])
        nest = await portal.run(nested, count=count)
        await portal.cancel_actor()
    return {
        'first': first,
        'seq_mean': statistics.mean(seq),
        'seq_median': statistics.median(seq),
        'concurrent': conc,
        'nested_first': nest[0],
        'nested_mean': statistics.mean(nest[1:] or nest),
    }


def child_main(backend: str, count: int, proto: str, share: bool) -> None:
    '''One backend in this (fresh) process; prints a JSON line.'''
    try:
        _spawn.try_set_start_method(backend)
    except RuntimeError as err:
        print(json.dumps({'skipped': str(err)}))
        return
    if not share:
        from tractor.spawn import _mp
        _mp.SHARE_FORKSERVER = False
    print(json.dumps(trio.run(run_backend, backend, count, proto)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('-n', '--count', type=int, default=10)
    parser.add_argument('--tpt-proto', default='tcp', choices=['tcp', 'uds'])
    parser.add_argument('--backend', help=argparse.SUPPRESS)
    parser.add_argument('--own-forkserver', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.backend:
        child_main(args.backend, args.count, args.tpt_proto, not args.own_forkserver)
        return

    pkg = pathlib.Path(tractor.__file__).parent
    compileall.compile_dir(str(pkg), quiet=1)

    runs: list[tuple[str, str, list[str]]] = [
        (key, key, []) for key in typing.get_args(_spawn.SpawnMethodKey)
    ]
    runs.append(('mp_forkserver/own', 'mp_forkserver', ['--own-forkserver']))

    cols = ['first', 'seq_mean', 'seq_median', 'concurrent', 'nested_first', 'nested_mean']
    print(
        f'spawn latency in ms (until the first RPC answers), n={args.count}, '
        f'--tpt-proto {args.tpt_proto}, python {sys.version.split()[0]}, '
        f'{os.cpu_count()} cpus'
    )
    print(f'{"backend":<20}' + ''.join(f'{c:>14}' for c in cols))
    env = dict(os.environ)
    # the compiled files are used, but no new ones written from here on
    env.setdefault('PYTHONDONTWRITEBYTECODE', '1')
    for label, backend, extra in runs:
        proc = subprocess.run(
            [
                sys.executable, __file__,
                '--backend', backend,
                '-n', str(args.count),
                '--tpt-proto', args.tpt_proto,
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
        if proc.returncode != 0 or not lines:
            print(f'{label:<20} FAILED (rc={proc.returncode}): {proc.stderr[-500:]}')
            continue
        result = json.loads(lines[-1])
        if 'skipped' in result:
            print(f'{label:<20} skipped: {result["skipped"]}')
            continue
        print(f'{label:<20}' + ''.join(f'{result[c] * 1e3:>14.1f}' for c in cols))
    print(
        'concurrent: wall time for all n; nested: a child spawning n '
        'grandchildren (first, then mean of the rest)'
    )


if __name__ == '__main__':
    main()
