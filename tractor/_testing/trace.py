'''
Hang diagnostics for tests: timeouts that, before failing, write a
best-effort snapshot of the process tree to disk.

Minimal on purpose: the snapshot is read from `/proc` (Linux) and is
skipped silently elsewhere; tests only rely on the timeout behaviour
and the exception types.

'''
from __future__ import annotations

from contextlib import (
    asynccontextmanager as acm,
    contextmanager as cm,
)
import os
import pathlib
import signal
import threading
import time
from typing import (
    AsyncContextManager,
    AsyncIterator,
    Callable,
    ContextManager,
    Iterator,
)

# directories of every snapshot written by this process.
_SNAPSHOT_INDEX: list[pathlib.Path] = []

type FailAfterWTraceFactory = Callable[[float], AsyncContextManager]
type AfkAlarmWTraceFactory = Callable[[float], ContextManager]


class AFKAlarmTimeout(TimeoutError):
    '''
    Raised by `afk_alarm_w_trace()` when its alarm fires.

    '''


def _default_out_dir() -> pathlib.Path:
    cache: str = (
        os.environ.get('XDG_CACHE_HOME')
        or os.path.join(os.path.expanduser('~'), '.cache')
    )
    return pathlib.Path(cache) / 'tractor' / 'hung-dumps'


def _read(path: str) -> str:
    try:
        with open(path, 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(
                errors='replace'
            ).strip()
    except OSError:
        return ''


def _proc_table() -> dict[int, tuple[int, str]]:
    '''
    `{pid: (ppid, state)}` for every process visible in `/proc`.

    '''
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        stat: str = _read(f'/proc/{entry}/stat')
        # "<pid> (<comm>) <state> <ppid> ..."; comm may hold spaces
        _, _, rest = stat.rpartition(')')
        fields: list[str] = rest.split()
        if len(fields) >= 2:
            table[int(entry)] = (int(fields[1]), fields[0])
    return table


def _tree_lines(root: int) -> list[str]:
    table = _proc_table()
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)

    lines: list[str] = []

    def walk(pid: int, depth: int) -> None:
        state: str = table.get(pid, (0, '?'))[1]
        wchan: str = _read(f'/proc/{pid}/wchan') or '-'
        cmd: str = _read(f'/proc/{pid}/cmdline') or _read(
            f'/proc/{pid}/comm'
        )
        lines.append(
            f'{"  " * depth}{pid} [{state}] wchan={wchan} {cmd}'
        )
        for kid in sorted(kids.get(pid, ())):
            walk(kid, depth + 1)

    walk(root, 0)
    return lines


def dump_snapshot(
    label: str,
    *,
    pid: int | None = None,
    out_dir: pathlib.Path | str | None = None,
) -> pathlib.Path | None:
    '''
    Write the process tree under `pid` (default: this process) with
    states, wait channels and command lines to a new directory in
    `out_dir` (default `$XDG_CACHE_HOME/tractor/hung-dumps/`) and
    record it in `_SNAPSHOT_INDEX`. Never raises.

    '''
    try:
        if not os.path.isdir('/proc'):
            return None
        base = pathlib.Path(out_dir) if out_dir else _default_out_dir()
        safe: str = ''.join(
            c if (c.isalnum() or c in '-_.') else '_'
            for c in label
        )[:100] or 'snapshot'
        stamp: str = time.strftime('%Y%m%d-%H%M%S')
        dest: pathlib.Path = base / f'{safe}.{stamp}.{os.getpid()}'
        dest.mkdir(parents=True, exist_ok=True)
        (dest / 'proc-tree.txt').write_text(
            '\n'.join(_tree_lines(pid or os.getpid())) + '\n'
        )
        _SNAPSHOT_INDEX.append(dest)
        return dest
    except Exception:
        return None


@acm
async def fail_after_w_trace(
    seconds: float,
    *,
    label: str,
    pid: int | None = None,
    out_dir: pathlib.Path | str | None = None,
) -> AsyncIterator[object]:
    '''
    `trio.fail_after(seconds)` which, when the deadline fired, first
    dumps a snapshot (see `dump_snapshot()`); the error (normally
    `trio.TooSlowError`) is always re-raised.

    '''
    import trio

    scope: trio.CancelScope | None = None
    try:
        with trio.fail_after(seconds) as scope:
            yield scope
    except BaseException:
        if (
            scope is not None
            and trio.current_time() >= scope.deadline
        ):
            dump_snapshot(label, pid=pid, out_dir=out_dir)
        raise


@cm
def afk_alarm_w_trace(
    seconds: float,
    *,
    label: str,
    pid: int | None = None,
    out_dir: pathlib.Path | str | None = None,
) -> Iterator[None]:
    '''
    Arm a `SIGALRM` timer (main thread only) for the block; when it
    fires, dump a snapshot and raise `AFKAlarmTimeout` from wherever
    the main thread is. For sync code which `trio` timeouts cannot
    interrupt.

    '''
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            '`afk_alarm_w_trace()` only works in the main thread'
        )

    def on_alarm(signum, frame) -> None:
        dump_snapshot(label, pid=pid, out_dir=out_dir)
        raise AFKAlarmTimeout(
            f'{label!r} still running after {seconds}s'
        )

    prev = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, prev)
