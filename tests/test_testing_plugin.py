'''
The pytest plugin's per-test leak checks and options, run on inner test
sessions (`pytester`): `reap_subactors_per_test` kills and reports
processes a test left behind, `track_orphaned_uds_per_test` reports and
removes leaked socket files, `detect_runaway_subactors_per_test` reports
spinning leftovers, `set_fork_aware_capture` picks the capture per
backend, and `--tpdb` runs the session's actor trees in debug mode.

'''
import os
import signal
import time

import pytest

from tractor._testing import _reap


def run_inner(pytester, *args: str):
    return pytester.runpytest_subprocess(
        '-p', 'tractor._testing.pytest',
        '-p', 'no:cacheprovider',
        '-W', 'always::tractor._testing.pytest.TractorLeakWarning',
        *args,
    )


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _reap._is_alive(pid):
            return True
        time.sleep(0.05)
    return False


# starts a titled "subactor" and exits, leaving it to be re-parented
ORPHAN_MAKER = '''
import os, subprocess, sys, time
code = (
    'import setproctitle, time; '
    'setproctitle.setproctitle("_subactor[orphan@1]"); '
    'time.sleep(60)'
)
orphan = subprocess.Popen(
    [sys.executable, '-c', code],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    # as tractor titles its subactors: their environment stays readable
    env=dict(os.environ, SPT_NOENV='1'),
)
cmdline = f'/proc/{orphan.pid}/cmdline'
while not open(cmdline, 'rb').read().startswith(b'_subactor['):
    time.sleep(0.01)
print(orphan.pid)
'''


def test_reap_subactors_per_test(pytester, tmp_path):
    '''
    Processes a test started and left running are killed after it (one
    ignoring SIGINT with SIGKILL), and so is a subactor of the session
    that lost its parent; each is named in a warning.
    '''
    pids_file = tmp_path / 'pids'
    orphan_maker = tmp_path / 'orphan_maker.py'
    orphan_maker.write_text(ORPHAN_MAKER)
    pytester.makepyfile(test_leaky=f'''
        import signal, subprocess, sys

        def test_leaves_processes(reap_subactors_per_test):
            assert reap_subactors_per_test > 0
            polite = subprocess.Popen(
                [sys.executable, '-c', 'import time; time.sleep(60)'])
            stubborn = subprocess.Popen([sys.executable, '-c',
                'import signal, time; signal.signal(signal.SIGINT, '
                'signal.SIG_IGN); print("ready", flush=True); time.sleep(60)'],
                stdout=subprocess.PIPE)
            assert stubborn.stdout.readline().strip() == b'ready'
            # a subactor whose parent died: re-parented, nobody reaps it
            middle = subprocess.run(
                [sys.executable, {str(orphan_maker)!r}],
                capture_output=True, text=True, check=True)
            orphan = int(middle.stdout)
            with open({str(pids_file)!r}, 'w') as out:
                out.write(f'{{polite.pid}} {{stubborn.pid}} {{orphan}}')

        def test_clean(reap_subactors_per_test):
            pass
    ''')
    result = run_inner(pytester, '-q')
    result.assert_outcomes(passed=2)
    polite, stubborn, orphan = map(int, pids_file.read_text().split())
    try:
        out = result.stdout.str()
        assert 'test_leaves_processes left 3 subactor process(es)' in out
        assert f'pid={stubborn}' in out and '(SIGKILLed)' in out
        assert f"pid={orphan} '_subactor[orphan@1]" in out
        assert 'test_clean left' not in out
        assert wait_dead(polite) and wait_dead(stubborn) and wait_dead(orphan)
    finally:
        for pid in (polite, stubborn, orphan):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_track_orphaned_uds_per_test(pytester):
    '''
    A socket file a test left in the UDS directory whose actor is dead is
    removed after the test and reported; files that existed before the
    test and live actors' files are left alone.
    '''
    uds_dir = _reap.get_uds_dir()
    pytester.makepyfile(test_uds=f'''
        import os, socket, subprocess, sys

        def dead_pid():
            proc = subprocess.Popen([sys.executable, '-c', 'pass'])
            proc.wait()
            return proc.pid

        def test_leaks_a_socket(track_orphaned_uds_per_test):
            assert track_orphaned_uds_per_test == {uds_dir!r}
            path = os.path.join({uds_dir!r}, f'parity_leaker@{{dead_pid()}}.sock')
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(path)
            sock.close()
            print('LEAKED', path)
    ''')
    result = run_inner(pytester, '-q', '-s')
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    leaked = out.split('LEAKED ')[1].split()[0]
    assert 'leaked 1 UDS socket file(s), now removed' in out
    assert leaked in out
    assert not os.path.exists(leaked)


def test_detect_runaway_subactors_per_test(pytester):
    '''A process a test left spinning a CPU is reported after it.'''
    pytester.makepyfile(test_spin='''
        import subprocess, sys
        import tractor._testing._leak_checks as leak_checks

        def test_leaves_a_spinner(
            reap_subactors_per_test,
            detect_runaway_subactors_per_test,
        ):
            # a loaded machine gives a spinner less than a whole CPU
            leak_checks.RUNAWAY_CPU_PERCENT = 20.0
            subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    ''')
    result = run_inner(pytester, '-q')
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert 'left 1 process(es) spinning' in out
    # and the reaper, torn down after the detector, killed it
    assert 'test_leaves_a_spinner left 1 subactor process(es)' in out


@pytest.mark.parametrize(
    'backend, expect',
    [('trio', 'fd'), ('mp_forkserver', 'capsys')],
)
def test_set_fork_aware_capture(pytester, backend, expect):
    '''
    A forking backend under fd-level capture gets `capsys`; any other
    gets the session's capture mode.
    '''
    pytester.makepyfile(test_capture=f'''
        def test_capture(set_fork_aware_capture):
            if {expect!r} == 'capsys':
                assert hasattr(set_fork_aware_capture, 'readouterr')
            else:
                assert set_fork_aware_capture == {expect!r}
    ''')
    result = run_inner(pytester, '-q', '--capture=fd', '--spawn-backend', backend)
    result.assert_outcomes(passed=1)


def test_tpdb_runs_trees_in_debug_mode(pytester):
    '''
    `--tpdb` (with `-s`: REPLs need the terminal) makes `tractor_test`
    roots, and so their children, run in debug mode.
    '''
    pytester.makepyfile(test_debugged='''
        import tractor
        from tractor._testing import tractor_test

        async def child_debug_mode() -> bool:
            return tractor.debug_mode()

        @tractor_test(timeout=60)
        async def test_tree_in_debug_mode(reg_addr, start_method, debug_mode):
            assert debug_mode is True
            assert tractor.debug_mode()
            async with tractor.open_nursery() as an:
                portal = await an.run_in_actor(child_debug_mode)
                assert await portal.wait_for_result() is True
    ''')
    result = run_inner(pytester, '-q', '-s', '--tpdb')
    result.assert_outcomes(passed=1)


def test_tpdb_without_s_is_refused_with_a_reason(pytester):
    '''A crash REPL behind pytest's capture would hang unseen: a usage error.'''
    pytester.makepyfile(test_nothing='def test_nothing(): pass')
    result = run_inner(pytester, '-q', '--tpdb')
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert '-s' in result.stderr.str()
