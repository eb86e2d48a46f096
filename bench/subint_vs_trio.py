'''
Spawn cost of the `subint` backend next to `trio` (subprocesses).

For each backend, in a fresh root process: spawn and tear down N actors
one after the other (`run_in_actor` of a no-op), then report

- spawn latency: `run_in_actor()` call until the child's result is in
  (median and p90 over the N spawns),
- full cycle: spawn + result + teardown (median),
- per-actor memory: RSS added to the *whole tree* by 10 actors kept
  alive at once, divided by 10 (root RSS for subint, root + children
  for trio),
- root RSS growth over the N sequential spawn/teardowns,
- leftovers afterwards: threads in the root (Python-level and OS-level),
  sub-interpreters, child processes.

Usage: `uv run python bench/subint_vs_trio.py [N]` (default N=50).
'''
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time

import psutil
import trio
import tractor
from tractor._testing.addr import get_rando_addr


async def noop() -> None:
    return None


async def sleep_forever() -> None:
    await trio.sleep_forever()


def rss_tree() -> int:
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def interp_count() -> int:
    try:
        import _interpreters
        return len(_interpreters.list_all())
    except ImportError:
        return 1


async def measure(backend: str, count: int) -> dict:
    spawn: list[float] = []
    cycle: list[float] = []
    # a private registry address: never meet another tree on this host
    reg_addr = get_rando_addr('tcp')
    async with tractor.open_root_actor(
        start_method=backend,
        name='bench-root',
        registry_addrs=[reg_addr],
    ):
        # warm-up (imports, the subint config probe)
        async with tractor.open_nursery() as an:
            await (await an.run_in_actor(noop)).wait_for_result()
        rss_start = psutil.Process().memory_info().rss
        threads_start = threading.active_count()
        os_threads_start = len(os.listdir('/proc/self/task'))
        for i in range(count):
            started = time.perf_counter()
            async with tractor.open_nursery() as an:
                portal = await an.run_in_actor(noop, name=f'n{i}')
                await portal.wait_for_result()
                spawn.append(time.perf_counter() - started)
            cycle.append(time.perf_counter() - started)
        await trio.sleep(0.2)
        rss_end = psutil.Process().memory_info().rss

        # memory of 10 live actors
        before = rss_tree()
        async with tractor.open_nursery() as an:
            for i in range(10):
                await an.start_actor(f'm{i}', enable_modules=[__name__])
            await trio.sleep(0.5)
            during = rss_tree()
            await an.cancel()

    await trio.sleep(0.2)
    return {
        'backend': backend,
        'count': count,
        'spawn_ms_median': 1e3 * statistics.median(spawn),
        'spawn_ms_p90': 1e3 * statistics.quantiles(spawn, n=10)[-1],
        'cycle_ms_median': 1e3 * statistics.median(cycle),
        'mib_per_actor': (during - before) / 10 / 2**20,
        'root_rss_growth_mib': (rss_end - rss_start) / 2**20,
        'leftover_py_threads': threading.active_count() - threads_start,
        'leftover_os_threads': len(os.listdir('/proc/self/task')) - os_threads_start,
        'leftover_interps': interp_count() - 1,
        'leftover_children': len(psutil.Process().children(recursive=True)),
    }


ROWS = [
    ('spawn latency, median (ms)', 'spawn_ms_median', '{:.0f}'),
    ('spawn latency, p90 (ms)', 'spawn_ms_p90', '{:.0f}'),
    ('spawn+teardown, median (ms)', 'cycle_ms_median', '{:.0f}'),
    ('memory per live actor (MiB)', 'mib_per_actor', '{:.1f}'),
    ('root RSS growth over N (MiB)', 'root_rss_growth_mib', '{:+.1f}'),
    ('leftover threads (python)', 'leftover_py_threads', '{}'),
    ('leftover threads (OS)', 'leftover_os_threads', '{}'),
    ('leftover sub-interpreters', 'leftover_interps', '{}'),
    ('leftover child processes', 'leftover_children', '{}'),
]


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == '--one':
        # one backend, in a fresh process, results as json
        backend, count = sys.argv[2], int(sys.argv[3])
        print(json.dumps(trio.run(measure, backend, count)))
        return

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    results = {}
    for backend in ('subint', 'trio'):
        out = subprocess.run(
            [sys.executable, __file__, '--one', backend, str(count)],
            capture_output=True, text=True, timeout=600,
        )
        if out.returncode != 0:
            sys.exit(f'{backend} run failed:\n{out.stderr[-3000:]}')
        results[backend] = json.loads(out.stdout.strip().splitlines()[-1])

    width = max(len(label) for label, *_ in ROWS)
    print(f'{count} sequential spawn/teardown cycles per backend, '
          f'python {sys.version.split()[0]}, {os.cpu_count()} cpus\n')
    print(f'{"":{width}}  {"subint":>9}  {"trio":>9}')
    for label, key, fmt in ROWS:
        cells = [fmt.format(results[b][key]) for b in ('subint', 'trio')]
        print(f'{label:{width}}  {cells[0]:>9}  {cells[1]:>9}')


if __name__ == '__main__':
    main()
