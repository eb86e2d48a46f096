'''
pytest plugin for `tractor` test-suites (ours and downstream ones).

Load it with `-p tractor._testing.pytest` (e.g. in `addopts`). It adds:

- options `--spawn-backend`, `--tpt-proto`, `--ll/--loglevel`,
  `--tl/--tractor-loglevel`, `--tpdb/--debug-mode`,
  `--enable-stackscope`,
- fixtures `start_method` (parametrized per session), `spawn_backend`,
  `reg_addr`, `loglevel`, `debug_mode`, `tpt_proto(s)`, `test_log`,
  `testing_pkg_name`, `is_forking_spawner`, `fail_after_w_trace`,
  `afk_alarm_w_trace`, `set_fork_aware_capture`, the leak checks
  `reap_subactors_per_test`, `track_orphaned_uds_per_test`,
  `detect_runaway_subactors_per_test` and the autouse
  `_reset_runtime_vars`,
- markers `skipon_spawn_backend`, `no_tpt`, `has_nested_actors`,
  `trio`,
- at session end, reaping of any child process the session leaked.

'''
from __future__ import annotations

import copy
import os
import typing
import warnings
from typing import (
    Any,
    Callable,
    Iterator,
)

import pytest

import tractor
from tractor._testing import tractor_test  # re-exported
from tractor._testing import trace as _trace
# the per-test leak checks: fixtures of this plugin
from tractor._testing._leak_checks import (
    TractorLeakWarning as TractorLeakWarning,
    detect_runaway_subactors_per_test as detect_runaway_subactors_per_test,
    reap_subactors_per_test as reap_subactors_per_test,
    track_orphaned_uds_per_test as track_orphaned_uds_per_test,
)

__all__ = ['tractor_test']

# backend names which are valid in `skipon_spawn_backend` marks even
# when not (yet) selectable with `--spawn-backend`.
_IN_DEV_BACKENDS: frozenset[str] = frozenset({
    'subint',
    'subint_forkserver',
    'main_thread_forkserver',
})
_FORKING_BACKENDS: tuple[str, ...] = (
    'main_thread_forkserver',
    'mp_forkserver',
)

# why the session's spawn backend cannot work on this host, if so.
_backend_unusable = pytest.StashKey[str | None]()

# the first (outermost) config of this process; nested in-process
# sessions (`pytester.runpytest()`) must not reap the outer session's
# children.
_outermost_config: pytest.Config | None = None


def _spawn_method_keys() -> tuple[str, ...]:
    from tractor.spawn._spawn import SpawnMethodKey
    return typing.get_args(SpawnMethodKey)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup('tractor', 'tractor actor runtime')
    group.addoption(
        '--spawn-backend',
        action='store',
        dest='spawn_backend',
        default='trio',
        choices=_spawn_method_keys(),
        help='Subactor spawning backend for the session '
             '(the `start_method` fixture). Default: trio.',
    )
    group.addoption(
        '--tpt-proto',
        action='store',
        dest='tpt_protos',
        nargs='+',
        default=['tcp'],
        help='IPC transport protocol for the session, one of the '
             'registered address types (tcp, uds). Default: tcp.',
    )
    group.addoption(
        '--ll', '--loglevel',
        action='store',
        dest='loglevel',
        default=None,
        help='Console log level for the tested package (for '
             "tractor's own suite also the runtime's level).",
    )
    group.addoption(
        '--tl', '--tractor-loglevel',
        action='store',
        dest='tractor_loglevel',
        default=None,
        help="Level or log-spec (e.g. 'devx:runtime,trionics:cancel') "
             'for the tractor runtime loggers; defaults to --ll.',
    )
    group.addoption(
        '--tpdb', '--debug-mode',
        action='store_true',
        dest='tractor_debug_mode',
        default=False,
        help='Run actor trees in debug mode (the `debug_mode` fixture, '
             'which `tractor_test` passes to the root): crash REPLs and '
             '`tractor.pause()` on the terminal; needs `-s`.',
    )
    group.addoption(
        '--enable-stackscope',
        action='store_true',
        dest='enable_stackscope',
        default=False,
        help='Export TRACTOR_ENABLE_STACKSCOPE=1 so every actor '
             '(and pytest itself) dumps its trio task tree to stderr '
             'on SIGUSR1.',
    )


_MARKERS: tuple[str, ...] = (
    'no_tpt(proto_key): the test does not support this IPC transport '
    '(informational).',
    'skipon_spawn_backend(*start_methods, reason=None): skip the test '
    'when --spawn-backend is one of `start_methods`.',
    'has_nested_actors: the test spawns a multi-level actor tree.',
    'trio: legacy marker for trio-run tests.',
)


def pytest_configure(config: pytest.Config) -> None:
    global _outermost_config
    if _outermost_config is None:
        _outermost_config = config

    for line in _MARKERS:
        config.addinivalue_line('markers', line)

    backend: str = config.getoption('spawn_backend')
    from tractor.spawn._spawn import try_set_start_method
    try:
        try_set_start_method(backend)
    except RuntimeError as err:
        # e.g. a backend needing a newer python; don't fail the whole
        # session, skip what would spawn with it instead.
        config.stash[_backend_unusable] = (
            str(err)
            or f'--spawn-backend={backend!r} cannot work on this host'
        )
    else:
        config.stash[_backend_unusable] = None

    # `--tpt-proto` takes several values (upstream's interface), so test
    # paths written after it are swallowed as transports: say so up front
    swallowed = [
        value for value in config.getoption('tpt_protos')
        if '/' in value or value.endswith('.py') or os.path.exists(value)
    ]
    if swallowed:
        raise pytest.UsageError(
            f'--tpt-proto got test paths {swallowed!r}: put them before the '
            'option, e.g. `pytest tests/test_rpc.py --tpt-proto uds`'
        )

    if (
        config.getoption('tractor_debug_mode')
        and config.getoption('capture', 'fd') != 'no'
    ):
        # a crash REPL behind pytest's capture would wait, unseen, for input
        raise pytest.UsageError(
            '--tpdb/--debug-mode opens `(Pdb+)` REPLs on the terminal (crash '
            'REPLs, `tractor.pause()`): pass `-s` (`--capture=no`) with it'
        )

    from tractor._testing import _reap
    # inherited by every process the session starts: the per-test reaper
    # then tells this session's orphans from other sessions'
    os.environ.setdefault(_reap.SESSION_ENV_VAR, str(os.getpid()))

    if config.getoption('enable_stackscope'):
        os.environ['TRACTOR_ENABLE_STACKSCOPE'] = '1'
        # pytest itself dumps its (test's) trio tasks too
        from tractor.devx import enable_stack_on_sig
        try:
            enable_stack_on_sig()
        except ModuleNotFoundError as err:
            import warnings
            warnings.warn(f'--enable-stackscope: {err}', stacklevel=1)
    else:
        os.environ.pop('TRACTOR_ENABLE_STACKSCOPE', None)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _outermost_config
    if config is _outermost_config:
        _outermost_config = None


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines: list[str] = [
        'tractor: '
        f'spawn_backend={config.getoption("spawn_backend")!r}, '
        f'tpt_protos={config.getoption("tpt_protos")!r}, '
        f'loglevel={config.getoption("loglevel")!r}, '
        f'tractor_loglevel={config.getoption("tractor_loglevel")!r}, '
        f'debug_mode={config.getoption("tractor_debug_mode")!r}'
    ]
    unusable: str | None = config.stash.get(_backend_unusable, None)
    if unusable:
        lines.append(
            'tractor: spawn backend unusable here, tests requesting '
            f'`start_method` will be skipped: {unusable}'
        )
    return lines


def pytest_collection_modifyitems(
    session: pytest.Session,
    config: pytest.Config,
    items: list[pytest.Item],
) -> None:
    backend: str = config.getoption('spawn_backend')
    valid: set[str] = set(_spawn_method_keys()) | _IN_DEV_BACKENDS
    unusable: str | None = config.stash.get(_backend_unusable, None)

    for item in items:
        if (
            unusable
            and 'start_method' in getattr(item, 'fixturenames', ())
        ):
            item.add_marker(pytest.mark.skip(reason=unusable))
            continue

        # closest mark first (function, then class, then module)
        marks = list(item.iter_markers(name='skipon_spawn_backend'))
        for mark in marks:
            for key in mark.args:
                assert key in valid, (
                    f'Invalid spawn backend {key!r} in '
                    f'`skipon_spawn_backend` mark of {item.nodeid}; '
                    f'valid: {sorted(valid)}'
                )
        for mark in marks:
            if backend in mark.args:
                item.add_marker(
                    pytest.mark.skip(
                        reason=mark.kwargs.get(
                            'reason',
                            f"Borked on --spawn-backend={backend!r}",
                        )
                    )
                )
                break


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    backend: str = metafunc.config.getoption('spawn_backend')
    keys = _spawn_method_keys()
    assert backend in keys, (
        f'{backend!r} is not a valid spawn backend, one of {keys}'
    )
    if 'start_method' in metafunc.fixturenames:
        metafunc.parametrize(
            'start_method',
            [backend],
            scope='session',
            ids=[f'start_method={backend}'],
        )


# -- session end: reap leaked children ---------------------------------

def _reap_leftover_children(grace: float = 2.0) -> list[str]:
    '''
    SIGINT every (transitive) child process of this one but the
    `multiprocessing` helpers, SIGKILL those still alive after `grace`
    seconds; return their descriptions.
    '''
    from tractor._testing import _reap
    pids = [
        pid for pid in _reap.find_descendants() if not _reap.is_mp_helper(pid)
    ]
    described = {pid: _reap.describe(pid) for pid in pids}
    killed = set(_reap.reap(pids, grace=grace))
    return [
        text + (' (SIGKILLed)' if pid in killed else '')
        for pid, text in described.items()
    ]


def pytest_sessionfinish(
    session: pytest.Session,
    exitstatus: int,
) -> None:
    if session.config is not _outermost_config:
        return
    report: list[str] = _reap_leftover_children()
    if not report:
        return
    msg: str = (
        f'WARNING: {len(report)} leftover child process(es) of the '
        'test session were reaped (SIGINT, then SIGKILL after 2s):\n'
        + '\n'.join(f'  {line}' for line in report)
    )
    tr = session.config.pluginmanager.get_plugin('terminalreporter')
    if tr is not None:
        tr.ensure_newline()
        tr.write_line(msg, yellow=True, bold=True)
    else:
        import sys
        print(msg, file=sys.stderr)


# -- fixtures ----------------------------------------------------------

@pytest.fixture(scope='session')
def debug_mode(request: pytest.FixtureRequest) -> bool:
    '''
    Whether actor trees run in debug mode (`--tpdb`).

    '''
    return bool(request.config.getoption('tractor_debug_mode'))


@pytest.fixture(scope='session')
def spawn_backend(request: pytest.FixtureRequest) -> str:
    '''
    The session's `--spawn-backend`.

    '''
    return request.config.getoption('spawn_backend')


@pytest.fixture(scope='session')
def start_method(spawn_backend: str) -> str:
    '''
    The spawn backend to pass as `start_method=`; normally provided
    by the session-wide parametrization in `pytest_generate_tests`.

    '''
    return spawn_backend


@pytest.fixture(scope='session')
def is_forking_spawner(start_method: str) -> bool:
    return start_method in _FORKING_BACKENDS


@pytest.fixture(scope='session')
def tpt_protos(request: pytest.FixtureRequest) -> list[str]:
    '''
    The `--tpt-proto` keys (exactly one for now).

    '''
    protos: list[str] = [
        proto.strip().strip('\'"').strip()
        for proto in request.config.getoption('tpt_protos')
    ]
    if len(protos) != 1:
        pytest.fail(
            'Only one transport protocol per session is supported, '
            f'got --tpt-proto {" ".join(protos)}'
        )
    from tractor.discovery._addr import _address_types
    for proto in protos:
        if proto not in _address_types:
            pytest.fail(
                f'Unknown --tpt-proto {proto!r}, valid ones: '
                f'{sorted(_address_types)}'
            )
    return protos


@pytest.fixture(scope='session', autouse=True)
def tpt_proto(tpt_protos: list[str]) -> Iterator[str]:
    '''
    The session's IPC transport; every root actor opened during the
    session defaults to it.

    '''
    proto: str = tpt_protos[0]
    from tractor.runtime import _state

    prev_proto: str = _state._def_tpt_proto
    prev_tpts: Any = _state._runtime_vars.get('_enable_tpts')
    changed: bool = proto != prev_proto
    if changed:
        _state._def_tpt_proto = proto
        _state._runtime_vars['_enable_tpts'] = [proto]
    try:
        yield proto
    finally:
        if changed:
            _state._def_tpt_proto = prev_proto
            _state._runtime_vars['_enable_tpts'] = prev_tpts


@pytest.fixture(scope='session')
def reg_addr(tpt_proto: str) -> Any:
    '''
    A registry address for this session and transport: random, not
    handed out to any other test run, never the default one.

    '''
    from tractor._testing.addr import get_rando_addr
    return get_rando_addr(tpt_proto)


@pytest.fixture(scope='session')
def testing_pkg_name() -> str:
    '''
    Package whose console logging `--ll` controls; downstream
    projects override this fixture.

    '''
    return 'tractor'


@pytest.fixture(scope='session', autouse=True)
def loglevel(
    request: pytest.FixtureRequest,
    testing_pkg_name: str,
) -> Iterator[str | None]:
    '''
    The runtime's console log level for the session (`--tl`, else
    `--ll`), or `None`.

    '''
    from tractor import log as _log

    opts = request.config
    pkg_level: str | None = opts.getoption('loglevel')
    rt_spec: str | None = opts.getoption('tractor_loglevel') or pkg_level

    prev_default: str = _log._default_loglevel
    level: str | int | None = None
    if rt_spec:
        level, _ = _log.apply_logspec(rt_spec, pkg_name='tractor')
        if level is not None:
            _log._default_loglevel = level
    if pkg_level and testing_pkg_name != 'tractor':
        _log.get_console_log(level=pkg_level, pkg_name=testing_pkg_name)
    try:
        yield level
    finally:
        _log._default_loglevel = prev_default


@pytest.fixture
def test_log(
    request: pytest.FixtureRequest,
    loglevel: str | None,
    testing_pkg_name: str,
) -> tractor.log.StackLevelAdapter:
    '''
    A logger named after the test module, under `testing_pkg_name`.

    '''
    from tractor import log as _log

    module = getattr(request, 'module', None)
    modname: str = (
        getattr(module, '__name__', None)
        or request.node.name
    )
    return _log.get_console_log(
        level=loglevel,
        name=modname.rpartition('.')[2],
        pkg_name=testing_pkg_name,
    )


@pytest.fixture(autouse=True)
def _reset_runtime_vars(tpt_proto: str) -> Iterator[None]:
    '''
    Restore the runtime's global `_runtime_vars` after each test.

    '''
    from tractor.runtime._state import _runtime_vars

    try:
        snapshot: dict[str, Any] = copy.deepcopy(_runtime_vars)
    except Exception:
        snapshot = {
            key: (copy.copy(val) if isinstance(val, (list, dict)) else val)
            for key, val in _runtime_vars.items()
        }
    try:
        yield
    finally:
        _runtime_vars.clear()
        _runtime_vars.update(snapshot)


@pytest.fixture
def fail_after_w_trace(
    request: pytest.FixtureRequest,
) -> Callable[..., Any]:
    '''
    `(seconds) -> async ctx manager`: a `trio.fail_after()` which
    dumps a process-tree snapshot before failing.

    '''
    label: str = request.node.nodeid

    def factory(seconds: float, **kwargs: Any):
        kwargs.setdefault('label', label)
        return _trace.fail_after_w_trace(seconds, **kwargs)

    return factory


@pytest.fixture
def afk_alarm_w_trace(
    request: pytest.FixtureRequest,
) -> Callable[..., Any]:
    '''
    `(seconds) -> ctx manager`: a `SIGALRM` timeout for sync code
    which dumps a process-tree snapshot before raising.

    '''
    label: str = request.node.nodeid

    def factory(seconds: float, **kwargs: Any):
        kwargs.setdefault('label', label)
        return _trace.afk_alarm_w_trace(seconds, **kwargs)

    return factory


@pytest.fixture
def set_fork_aware_capture(
    request: pytest.FixtureRequest,
    is_forking_spawner: bool,
) -> Any:
    '''
    With a forking spawn backend and a capture mode other than `sys`,
    capture this test's output at the `sys` level (returns the `capsys`
    fixture): forked children share the parent's captured fds. Otherwise
    returns the session's capture mode (`'fd'`, `'sys'`, `'no'`, ...).
    '''
    mode: str = request.config.getoption('capture')
    if is_forking_spawner and mode != 'sys':
        return request.getfixturevalue('capsys')
    return mode
