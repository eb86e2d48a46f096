'''
Per-test leak checks, fixtures of the pytest plugin
(`tractor._testing.pytest`): subactor processes, UDS socket files and
CPU-spinning processes a test left behind, each reported with a
`TractorLeakWarning` (and, for the first two, cleaned up).
'''
from __future__ import annotations

import os
import time
import warnings
from typing import Iterator

import pytest

from tractor._testing import _reap


class TractorLeakWarning(UserWarning):
    '''A test left subactors, socket files or busy processes behind.'''


def _new_descendants(before: set[int]) -> list[int]:
    return [
        pid for pid in _reap.find_descendants()
        if pid not in before and not _reap.is_mp_helper(pid)
    ]


@pytest.fixture
def reap_subactors_per_test(request: pytest.FixtureRequest) -> Iterator[int]:
    '''
    After the test, kill the subactor processes it left behind: its own
    new descendants, and subactors of this session that lost their
    parent meanwhile (orphans); each one is reported with a
    `TractorLeakWarning`. Yields the pytest process's pid.
    '''
    session = os.environ.get(_reap.SESSION_ENV_VAR)
    descendants_before = set(_reap.find_descendants())
    orphans_before = set(_reap.find_orphans(session))
    yield os.getpid()
    leftovers = _new_descendants(descendants_before)
    leftovers += [
        pid for pid in _reap.find_orphans(session)
        if pid not in orphans_before and pid not in leftovers
    ]
    if not leftovers:
        return
    described = [_reap.describe(pid) for pid in leftovers]
    killed = set(_reap.reap(leftovers))
    # one line: pytest's warnings summary shows only a message's first
    warnings.warn(TractorLeakWarning(
        f'{request.node.nodeid} left {len(leftovers)} subactor process(es) '
        'behind, now reaped (SIGINT, then SIGKILL): ' + '; '.join(
            text + (' (SIGKILLed)' if pid in killed else '')
            for pid, text in zip(leftovers, described)
        )
    ))


@pytest.fixture
def track_orphaned_uds_per_test(request: pytest.FixtureRequest) -> Iterator[str]:
    '''
    After the test, remove the UDS socket files it leaked in the default
    socket directory: new files whose actor is dead, or (sub-interpreter
    actors of this process) that nothing listens on any more; reported
    with a `TractorLeakWarning`. Yields the directory. (On a machine
    shared with other test sessions, a file another session leaked during
    this test counts too.)
    '''
    uds_dir = _reap.get_uds_dir()
    before = {path.name for path in _reap.socket_files(uds_dir)}
    yield uds_dir
    own_pid = str(os.getpid())
    leaked = [
        path for path in _reap.find_orphaned_uds(uds_dir)
        if path.name not in before
    ]
    for path in _reap.socket_files(uds_dir):
        match = _reap._SOCK_NAME.match(path.name)
        if (
            path.name not in before
            and match and match['pid'] == own_pid
            and not _reap._answers(path)
        ):
            leaked.append(path)
    removed = _reap.remove_files(leaked)
    if removed:
        warnings.warn(TractorLeakWarning(
            f'{request.node.nodeid} leaked {len(removed)} UDS socket '
            'file(s), now removed: ' + '; '.join(str(path) for path in removed)
        ))


# a process above this share of one CPU, measured after the test, spins
RUNAWAY_CPU_PERCENT: float = 90.0
RUNAWAY_SAMPLE_SECONDS: float = 0.3


@pytest.fixture
def detect_runaway_subactors_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    '''
    After the test, report (`TractorLeakWarning`) the processes it left
    running that spin a CPU (above `RUNAWAY_CPU_PERCENT` over
    `RUNAWAY_SAMPLE_SECONDS`); combine with `reap_subactors_per_test`
    to also kill them.
    '''
    before = set(_reap.find_descendants())
    yield
    pids = _new_descendants(before)
    if not pids:
        return
    start = {pid: _cpu_seconds(pid) for pid in pids}
    began = time.monotonic()
    time.sleep(RUNAWAY_SAMPLE_SECONDS)
    elapsed = time.monotonic() - began
    runaways: list[str] = []
    for pid in pids:
        used = _cpu_seconds(pid)
        if start[pid] is None or used is None:
            continue
        percent = 100 * (used - start[pid]) / elapsed
        if percent >= RUNAWAY_CPU_PERCENT:
            runaways.append(f'{_reap.describe(pid)} at {percent:.0f}% CPU')
    if runaways:
        warnings.warn(TractorLeakWarning(
            f'{request.node.nodeid} left {len(runaways)} process(es) '
            'spinning: ' + '; '.join(runaways)
        ))


def _cpu_seconds(pid: int) -> float|None:
    '''User plus system CPU time `pid` used so far (`/proc/<pid>/stat`).'''
    try:
        with open(f'/proc/{pid}/stat') as stat:
            fields = stat.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    # fields 14 and 15 of stat(5) (utime, stime), counted after the name
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
