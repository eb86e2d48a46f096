'''
One benchmark for every performance figure of tractor (issue 15), with
the floors this machine allows measured alongside in the same run.

    UV_COMPILE_BYTECODE=1 uv run python bench/run.py [--backend subint] [--tpt uds]
        [--reps 3] [--json out.json]

Metrics (public API only, medians over `--reps` repetitions, each in a
fresh root process):

  spawn      `start_actor()` until the child's first `Portal.run(noop)`
             answers, the child reaped before the next (the first spawn
             of a process is reported apart, as `spawn_first`)
  burst16    16 actors at once from a cold root, until all answered and
             all are torn down
  rpc        `Portal.run(noop)` round trip
  oneway     `MsgStream` throughput, child -> parent
  echo       `MsgStream` echo round trips, one in flight
  memory     PSS added to the whole tree (root, children, forkserver)
             per live actor, 8 actors up
  import     `import tractor` in a fresh interpreter

Floors, measured in the same run: fork of a warm trio process, a fresh
process importing trio+msgspec, a sub-interpreter created and destroyed,
a trio socket ping-pong between two processes over the transport, a
msgpack encode+decode of a small message, the PSS of a process (or of a
sub-interpreter) holding trio+msgspec, and importing trio+msgspec. The
table gives each metric's ratio to its floor (1.0 = nothing left to win)
and the goal of the issue. Under it, what trio itself allows for the
same work (`floors.py`): one schedule point, a memory channel between
two tasks, and a call built from plain trio with a remote call's
structure (loop task per side, task per call, memory channel).

Comparing two commits, interleaved in one run (what a before/after
claim needs on a shared box): check the other commit out in a worktree
and name both trees; every repetition runs each metric in each tree in
turn, with this script's code and that tree's `tractor`:

    git worktree add /tmp/tractor-before <commit>
    UV_COMPILE_BYTECODE=1 uv run python bench/run.py --backend subint \\
        --tree before=/tmp/tractor-before --tree after=. --json cmp.json

Two JSON files of separate runs (or the two trees of one) compare with

    uv run python bench/run.py --compare a.json b.json [--label before]

Each measurement runs in its own process (`--job`), so a tree's import
and spawn state never leak into the next one; the tree's `tractor`
sources are byte-compiled first (`PYTHONDONTWRITEBYTECODE=1` would
otherwise make every child compile them again).
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


# `floors.py` sits beside this script, which children also load (as
# their parent's `__main__`) from other working directories
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from floors import (  # noqa: E402
    EXTRA_FLOORS,
    _pss_kib,
    job_floors,
    job_memfloor_subint,
)
from targets import (  # noqa: E402
    echo,
    noop,
    produce,
)

HERE = pathlib.Path(__file__).resolve()
BACKENDS = ('trio', 'mp_spawn', 'mp_forkserver', 'subint')

# metric -> (unit, lower is better, floor key per backend kind, goal per backend)
METRICS: dict[str, dict] = {
    'spawn': dict(unit='ms', floor={'trio': 'fresh_proc', 'mp_spawn': 'fresh_proc',
                                    'mp_forkserver': 'fork_warm', 'subint': 'subint_create'},
                  goal={'trio': 130, 'mp_forkserver': 10, 'subint': 10}),
    'spawn_first': dict(unit='ms', floor={}, goal={}),
    'burst16': dict(unit='s', floor={'subint': 'subint_cold16', '*': 'burst_floor'},
                    goal={'mp_forkserver': 0.25, 'subint': 1.0}),
    'rpc': dict(unit='us', floor={'*': 'pingpong'},
                goal={'*': 100}),
    'oneway': dict(unit='msg/s', higher=True, floor={'*': 'msgpack_rate'},
                   goal={'trio': 400e3, 'mp_spawn': 400e3, 'mp_forkserver': 400e3,
                         'subint': 250e3}),
    'echo': dict(unit='rt/s', higher=True, floor={'*': 'pingpong_rate'},
                 goal={'*': 12e3}),
    'memory': dict(unit='MiB', floor={'subint': 'mem_subint', '*': 'mem_proc'},
                   goal={'trio': 18, 'mp_spawn': 18, 'mp_forkserver': 18, 'subint': 13}),
    'import': dict(unit='ms', floor={'*': 'import_floor'}, goal={'*': 120}),
}


def _for(table: dict, backend: str):
    return table.get(backend, table.get('*'))


# -- what runs in the actors: `targets.py` --------------------------------

# every child: the target module only, not this script replayed
_CHILD = dict(enable_modules=['targets'], inherit_parent_main=False)


# -- jobs (one per process) -----------------------------------------------

def _reg_addr(tpt: str):
    from tractor._testing.addr import get_rando_addr
    return get_rando_addr(tpt)


def _root_kwargs(backend: str, tpt: str) -> dict:
    return dict(
        start_method=backend,
        registry_addrs=[_reg_addr(tpt)],
        enable_transports=[tpt],
    )


async def job_spawn(backend: str, tpt: str, count: int) -> dict:
    import trio
    import tractor
    times = []
    async with tractor.open_root_actor(**_root_kwargs(backend, tpt)):
        for i in range(count + 1):
            async with tractor.open_nursery() as an:
                start = time.perf_counter()
                portal = await an.start_actor(f'spawn{i}', **_CHILD)
                await portal.run(noop)
                times.append((time.perf_counter() - start) * 1e3)
                await portal.cancel_actor()
            # spawns a moment apart, as in a real program: a backend keeping
            # something warm (the subint pool) has time to refill
            await trio.sleep(0.4)
    return {'spawn_first': [times[0]], 'spawn': times[1:]}


async def job_burst(backend: str, tpt: str, count: int = 16) -> dict:
    import trio
    import tractor
    async with tractor.open_root_actor(**_root_kwargs(backend, tpt)):
        start = time.perf_counter()
        async with tractor.open_nursery() as an:
            async def one(i: int) -> None:
                portal = await an.start_actor(f'burst{i}', **_CHILD)
                await portal.run(noop)

            async with trio.open_nursery() as tn:
                for i in range(count):
                    tn.start_soon(one, i)
            await an.cancel()
        took = time.perf_counter() - start
    return {'burst16': [took]}


async def job_ipc(backend: str, tpt: str, rpc_n: int, oneway_n: int, echo_n: int) -> dict:
    import trio
    import tractor
    async with tractor.open_root_actor(**_root_kwargs(backend, tpt)):
        async with tractor.open_nursery() as an:
            portal = await an.start_actor('ipc', **_CHILD)
            # steady state: whatever a backend does after a spawn (the
            # subint pool warming its next spare) is over
            await trio.sleep(0.5)
            for _ in range(200):
                await portal.run(noop)
            rtts = []
            for _ in range(rpc_n):
                start = time.perf_counter()
                await portal.run(noop)
                rtts.append(time.perf_counter() - start)

            async def one_way(count: int) -> float:
                async with portal.open_context(produce, count=count,
                                               allow_overruns=True) as (ctx, _):
                    async with ctx.open_stream(allow_overruns=True) as stream:
                        start = time.perf_counter()
                        expect = 0
                        async for i in stream:
                            assert i == expect
                            expect += 1
                        took = time.perf_counter() - start
                    assert await ctx.wait_for_result() == count
                return count / took

            await one_way(1000)
            rate = await one_way(oneway_n)
            async with portal.open_context(echo) as (ctx, _):
                async with ctx.open_stream() as stream:
                    for i in range(100):
                        await stream.send(i)
                        await stream.receive()
                    start = time.perf_counter()
                    for i in range(echo_n):
                        await stream.send(i)
                        assert await stream.receive() == i
                    echo_rate = echo_n / (time.perf_counter() - start)
            await portal.cancel_actor()
    return {
        'rpc': [statistics.median(rtts) * 1e6],
        'oneway': [rate],
        'echo': [echo_rate],
    }


def _tree_pids(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    stat = f.read()
                parents[int(entry)] = int(stat.rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    return pids


def tree_pss_mib() -> float:
    return sum(_pss_kib(pid) for pid in _tree_pids(os.getpid())) / 1024


async def job_memory(backend: str, tpt: str, count: int = 8) -> dict:
    import trio
    import tractor
    async with tractor.open_root_actor(**_root_kwargs(backend, tpt)):
        async with tractor.open_nursery() as an:
            # helpers a backend starts once (forkserver, resource tracker)
            # and the first-spawn imports are not per-actor costs
            portal = await an.start_actor('warm', **_CHILD)
            await portal.run(noop)
            await portal.cancel_actor()
        await trio.sleep(0.5)
        before = tree_pss_mib()
        async with tractor.open_nursery() as an:
            for i in range(count):
                portal = await an.start_actor(f'mem{i}', **_CHILD)
                await portal.run(noop)
            await trio.sleep(0.5)
            during = tree_pss_mib()
            await an.cancel()
    return {'memory': [(during - before) / count]}


# run with `python -c`: this script imports tractor itself
_SNIPPETS = {
    'import-tractor': (
        'import time; t = time.perf_counter(); import tractor; '
        "print('JOB {\"import\": [%f]}' % ((time.perf_counter() - t) * 1e3))"
    ),
    'import-floor': (
        'import time; t = time.perf_counter(); import trio, msgspec; '
        "print('JOB {\"import_floor\": [%f]}' % ((time.perf_counter() - t) * 1e3))"
    ),
    'memfloor-proc': (
        'import trio, msgspec\n'
        "for line in open('/proc/self/smaps_rollup'):\n"
        "    if line.startswith('Pss:'):\n"
        "        print('JOB {\"mem_proc\": [%f]}' % (int(line.split()[1]) / 1024))\n"
    ),
}


def run_job(args: argparse.Namespace) -> None:
    name, backend, tpt = args.job, args.backend, args.tpt
    if name in ('spawn', 'burst', 'ipc', 'memory'):
        import trio
        if name == 'spawn':
            out = trio.run(job_spawn, backend, tpt, args.spawns)
        elif name == 'burst':
            out = trio.run(job_burst, backend, tpt)
        elif name == 'ipc':
            out = trio.run(job_ipc, backend, tpt, args.rpc_n, args.oneway_n, args.echo_n)
        else:
            out = trio.run(job_memory, backend, tpt)
    elif name == 'floors':
        out = job_floors(backend, tpt)
    elif name == 'memfloor-subint':
        out = job_memfloor_subint()
    else:
        raise SystemExit(f'unknown job {name!r}')
    print('JOB ' + json.dumps(out), flush=True)


# -- orchestration ---------------------------------------------------------

def _jobs(backend: str) -> list[str]:
    return [
        'floors', 'import-floor', 'import-tractor', f'memfloor-{"subint" if backend == "subint" else "proc"}',
        'spawn', 'burst', 'ipc', 'memory',
    ]


def _spawn_job(tree: pathlib.Path, job: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(tree), env.get('PYTHONPATH')]))
    env['PYTHONDONTWRITEBYTECODE'] = '1'  # use what `compileall` wrote
    cmd = [sys.executable, '-c', _SNIPPETS[job]] if job in _SNIPPETS else [
        sys.executable, str(HERE), '--job', job,
        '--backend', args.backend, '--tpt', args.tpt,
        '--spawns', str(args.spawns), '--rpc-n', str(args.rpc_n),
        '--oneway-n', str(args.oneway_n), '--echo-n', str(args.echo_n),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=args.job_timeout, cwd=tree)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('JOB ')]
    if proc.returncode != 0 or not lines:
        print(f'  job {job} in {tree} FAILED (rc={proc.returncode}):\n'
              f'{proc.stderr[-1500:]}', file=sys.stderr)
        return {}
    return json.loads(lines[-1][4:])


def _git_rev(tree: pathlib.Path) -> str:
    try:
        rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=tree,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=tree, capture_output=True, text=True).stdout.strip()
        return rev + ('+dirty' if dirty else '')
    except OSError:
        return '?'


def orchestrate(args: argparse.Namespace) -> dict:
    trees: dict[str, pathlib.Path] = {}
    for spec in args.tree or [f'this={HERE.parent.parent}']:
        label, _, path = spec.partition('=')
        trees[label] = pathlib.Path(path).resolve()
    for tree in trees.values():
        compileall.compile_dir(str(tree / 'tractor'), quiet=1)
    # children replay this script as their parent's `__main__`
    compileall.compile_file(str(HERE), quiet=1)
    samples: dict[str, dict[str, list[float]]] = {label: {} for label in trees}
    jobs = [j for j in _jobs(args.backend) if not args.only or j in args.only]
    for rep in range(args.reps):
        for job in jobs:
            order = list(trees.items())
            if rep % 2:
                order.reverse()
            for label, tree in order:
                for key, vals in _spawn_job(tree, job, args).items():
                    samples[label].setdefault(key, []).extend(vals)
        print(f'rep {rep + 1}/{args.reps} done', file=sys.stderr)
    return {
        'meta': {
            'backend': args.backend, 'tpt': args.tpt, 'reps': args.reps,
            'python': sys.version.split()[0], 'cpus': os.cpu_count(),
            'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            'loadavg': os.getloadavg(),
            'trees': {label: {'path': str(tree), 'rev': _git_rev(tree)}
                      for label, tree in trees.items()},
        },
        'runs': samples,
    }


def _fmt(value: float|None, unit: str = '') -> str:
    if value is None:
        return '-'
    if abs(value) >= 1e4:
        return f'{value / 1e3:,.0f}k'
    if abs(value) >= 100:
        return f'{value:,.0f}'
    if abs(value) >= 10:
        return f'{value:.1f}'
    return f'{value:.2f}'


def _med(vals: list[float]|None) -> float|None:
    return statistics.median(vals) if vals else None


def metric_rows(run: dict[str, list[float]], backend: str) -> list[tuple]:
    rows = []
    floors = dict(run)
    if 'spawn' in METRICS and floors.get(_for(METRICS['spawn']['floor'], backend) or ''):
        per = _med(floors[_for(METRICS['spawn']['floor'], backend)])
        # 16 spawn floors shared by the cores
        floors['burst_floor'] = [16 * per / 1e3 / (os.cpu_count() or 1)]
    for name, spec in METRICS.items():
        value = _med(run.get(name))
        floor_key = _for(spec['floor'], backend) if spec['floor'] else None
        floor = _med(floors.get(floor_key)) if floor_key else None
        ratio = None
        if value and floor:
            ratio = floor / value if spec.get('higher') else value / floor
        goal = _for(spec['goal'], backend)
        met = None
        if goal is not None and value is not None:
            met = value >= goal if spec.get('higher') else value <= goal
        rows.append((name, value, spec['unit'], floor_key, floor, ratio, goal, met))
    return rows


def print_table(result: dict) -> None:
    meta = result['meta']
    print(f"tractor bench: backend {meta['backend']}, tpt {meta['tpt']}, reps {meta['reps']}, "
          f"python {meta['python']}, {meta['cpus']} cpus, load {meta['loadavg'][0]:.1f} "
          f"at {meta['date']}")
    labels = list(result['runs'])
    for label in labels:
        print(f"  {label}: {meta['trees'][label]['path']} ({meta['trees'][label]['rev']})")
    head = f"{'metric':<12}{'unit':<7}" + ''.join(f'{lb:>10}' for lb in labels)
    head += f"{'floor':>10} {'(what)':<14}{'ratio':>7}{'goal':>9}"
    print(head)
    print('-' * len(head))
    rows = {lb: metric_rows(result['runs'][lb], meta['backend']) for lb in labels}
    for i, (name, *_rest) in enumerate(rows[labels[0]]):
        # the floor the ratio is taken against: the last tree's run's
        _, _, unit, fkey, floor, _, goal, _ = rows[labels[-1]][i]
        cells = ''.join(f'{_fmt(rows[lb][i][1]):>10}' for lb in labels)
        ratio = rows[labels[-1]][i][5]
        met = rows[labels[-1]][i][7]
        mark = '' if met is None else (' ok' if met else ' MISS')
        print(f"{name:<12}{unit:<7}{cells}{_fmt(floor):>10} {fkey or '':<14}"
              f"{(f'{ratio:.2f}x' if ratio else '-'):>7}{_fmt(goal):>9}{mark}")
    print('ratio: the last column\'s cost over its floor (1.00x = at the floor); '
          'goal: issue 15 (ok/MISS for the last column)')
    last = result['runs'][labels[-1]]
    for key, (unit, what) in EXTRA_FLOORS.items():
        if last.get(key):
            print(f'  {key:<13}{_fmt(_med(last[key])):>8} {unit:<6} {what}')


def compare(paths: list[str], label: str|None) -> None:
    results = [json.loads(pathlib.Path(p).read_text()) for p in paths]
    runs: dict[str, dict] = {}
    for path, result in zip(paths, results):
        for lb, run in result['runs'].items():
            if label is None or lb == label or len(results) == 1:
                runs[f'{pathlib.Path(path).stem}:{lb}'] = run
    names = list(runs)
    if len(names) < 2:
        raise SystemExit(f'need two runs to compare, have {names}')
    a, b = names[0], names[-1]
    print(f'{a}  vs  {b}  (backend {results[0]["meta"]["backend"]})')
    print(f"{'metric':<12}{'unit':<7}{'a':>10}{'b':>10}{'b/a':>8}")
    for name, spec in METRICS.items():
        va, vb = _med(runs[a].get(name)), _med(runs[b].get(name))
        change = f'{vb / va:.2f}' if va and vb else '-'
        print(f"{name:<12}{spec['unit']:<7}{_fmt(va):>10}{_fmt(vb):>10}{change:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--backend', default='trio', choices=BACKENDS)
    parser.add_argument('--tpt', default='tcp', choices=['tcp', 'uds'])
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--json', help='write all samples to this file')
    parser.add_argument('--tree', action='append',
                        help='LABEL=PATH of a checkout to measure (repeatable, interleaved)')
    parser.add_argument('--only', nargs='+', help='run only these jobs '
                        '(floors import-floor import-tractor memfloor-proc memfloor-subint '
                        'spawn burst ipc memory)')
    parser.add_argument('--compare', nargs='+', metavar='JSON')
    parser.add_argument('--label', help='with --compare: the tree label to take from each file')
    parser.add_argument('--spawns', type=int, default=10)
    parser.add_argument('--rpc-n', type=int, default=2000)
    parser.add_argument('--oneway-n', type=int, default=50_000)
    parser.add_argument('--echo-n', type=int, default=5_000)
    parser.add_argument('--job-timeout', type=float, default=300)
    parser.add_argument('--job', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare:
        compare(args.compare, args.label)
        return
    if args.job:
        run_job(args)
        return
    result = orchestrate(args)
    print_table(result)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
