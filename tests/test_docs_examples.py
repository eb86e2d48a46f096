'''
Run every example script under `examples/` as a user would: as the
`__main__` script of a fresh interpreter (so `enable_modules=[__name__]`
means `'__main__'`), and check it exits cleanly and prints what it
promises.

'''
import os
import pathlib
import signal
import subprocess
import sys

import pytest


EXAMPLES_DIR: pathlib.Path = (
    pathlib.Path(__file__).resolve().parent.parent / 'examples'
)

# sub-directories with their own dedicated suites (or none)
EXCLUDED_DIRS: set[str] = {
    'debugging',
    'integration',
    'advanced_faults',
    'multihost',
    'trio',
    '__pycache__',
}

TIMEOUT: float = 30

# substring(s) each example's stdout must contain (where reasonable)
EXPECTED_STDOUT: dict[str, str | tuple[str, ...]] = {
    'parallel_map.py': 'parallel map done: 4 chunks',
    'service_daemon.py': 'service cancelled: True',
    'grandchild_error.py': 'caught the grandchild error at the root',
    'actor_spawning_and_causality.py': 'greetings root, from greeter',
    'actor_spawning_and_causality_with_daemon.py': 'STRUCTURED CONCURRENCY!',
    'remote_error_propagation.py': "torn down by 'checker' failing",
    'service_discovery.py': "registered actors: [",
    'a_trynamic_first_scene.py': (
        'ada heard: "hello, I\'m grace"',
        'grace heard: "hello, I\'m ada"',
    ),
    'parallelism/single_func.py': 'same answer from two processes',
    'rpc_bidir_streaming.py': (
        "child started with: 'hello from ponger'",
        'the parent closed the stream after 10 rounds',
    ),
    'asynchronous_generators.py': 'first 20 fibonacci numbers: [0, 1, 1,',
    'multiple_streams_one_portal.py': 'both streams got the same 50 values',
    'full_fledged_streaming_service.py': (
        'received the full sequence of 1000 values in order',
        'aggregator cancelled: True',
    ),
    'nested_actor_tree.py': (
        "supervisor spawned: ['leaf_0', 'leaf_1', 'leaf_2']",
        'tree result: 14',
    ),
    'streaming_broadcast_fanout.py': 'all 3 subscribers saw all 30 ticks',
    'typed_payloads.py': (
        'child: bad `started()` value rejected locally',
        'typed dialog done, last point: Point(x=-3.0, y=-6.0)',
    ),
    'uds_transport_actor_tree.py': (
        'transport: uds',
        'uds actor tree done',
    ),
    'parallelism/we_are_processes.py': (
        'worker processes running',
        'whole tree cancelled, no processes left behind',
    ),
    'shared_resource_cache.py': (
        "feeds opened: ['btc', 'eth']",
        '8 of 10 opens were cache hits',
    ),
    'quick_cluster.py': (
        'sum of squares below 100000: 333328333350000',
        'cluster torn down after Ctrl-C',
    ),
    'asyncio_echo_server.py': (
        'asyncio echo server answered 100 round trips',
        'echo server actor cancelled',
    ),
    'asyncio_stream_feed.py': (
        'received 50 ticks from the asyncio feed, total 6225',
        'child says: feed done after 50 ticks',
    ),
    'pubsub_topics.py': (
        'squarer got: [1, 4, 9, 16, 25]',
        'cuber got: [1, 8, 27, 64, 125]',
    ),
    'custom_msg_types.py': (
        "  item: str = 'tea',",
        'half of 1/3 is Fraction(1, 6)',
    ),
    'shared_memory.py': (
        'squares from shared memory: [0, 1, 4, 9, 16, 25, 36, 49]',
        'average seen by the worker: 11.5',
        'segments left behind: False',
    ),
}


def collect_examples() -> list[pathlib.Path]:
    found: list[pathlib.Path] = []
    for path in sorted(EXAMPLES_DIR.rglob('*.py')):
        rel = path.relative_to(EXAMPLES_DIR)
        if any(part in EXCLUDED_DIRS for part in rel.parts[:-1]):
            continue
        if '__' in path.name or path.name.startswith('_'):
            continue
        found.append(path)
    return found


EXAMPLES: list[pathlib.Path] = collect_examples()


def test_examples_found():
    names = {p.relative_to(EXAMPLES_DIR).as_posix() for p in EXAMPLES}
    missing = set(EXPECTED_STDOUT) - names
    assert not missing, missing


@pytest.mark.parametrize(
    'example',
    EXAMPLES,
    ids=[p.relative_to(EXAMPLES_DIR).as_posix() for p in EXAMPLES],
)
def test_example(example: pathlib.Path, tmp_path):
    rel: str = example.relative_to(EXAMPLES_DIR).as_posix()
    script = tmp_path / 'test_example.py'
    script.write_text(example.read_text())

    env = dict(os.environ)
    env['PYTHON_COLORS'] = '0'

    proc = subprocess.Popen(
        [sys.executable, str(script.name)],
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # kill the example and every actor it spawned
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        pytest.fail(
            f'{rel} did not finish within {TIMEOUT}s\n'
            f'stdout:\n{out.decode(errors="replace")[-3000:]}\n'
            f'stderr:\n{err.decode(errors="replace")[-3000:]}'
        )

    stdout = out.decode(errors='replace')
    stderr = err.decode(errors='replace')
    report = (
        f'{rel}: rc={proc.returncode}\n'
        f'stdout:\n{stdout[-3000:]}\n'
        f'stderr:\n{stderr[-3000:]}'
    )
    assert proc.returncode == 0, report

    err_lines = [line for line in stderr.splitlines() if line.strip()]
    if err_lines:
        last = err_lines[-1]
        if 'asyncio.exceptions.CancelledError' not in last:
            assert 'Error' not in last, report

    expected = EXPECTED_STDOUT.get(rel, ())
    if isinstance(expected, str):
        expected = (expected,)
    for marker in expected:
        assert marker in stdout, report
