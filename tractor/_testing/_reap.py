'''
Finding and cleaning up what actor trees leave behind when a test (or a
crashed program) did not tear them down: subactor processes, and UDS
socket files whose actor is dead. Linux-oriented (`/proc`); used by the
per-test fixtures of `tractor._testing.pytest`.

Run as `python -m tractor._testing._reap` to list (and with `--kill`,
reap) the orphaned subactors and socket files of the current user.

'''
from __future__ import annotations

import argparse
import os
import re
import signal
import time
from pathlib import Path
from typing import Iterable

# the process title subactors give themselves (`tractor.devx._proctitle`)
SUBACTOR_TITLE_PREFIX: str = '_subactor['
# how a `trio`-backend child is started, when it has no title (yet)
_CHILD_MODULE: str = 'tractor._child'
# `<name>@<pid>.sock`, or `<name>@<pid>.<interpreter id>.sock` for an
# actor in a sub-interpreter (see `tractor.ipc._uds.UDSAddress.get_random`)
_SOCK_NAME = re.compile(r'^(?P<name>.+)@(?P<pid>\d+)(?:\.\d+)?\.sock$')
# the default registrar's socket: a fixed name, no owner pid in it
REGISTRY_SENTINEL: str = 'registry@1616.sock'


def _read_cmdline(pid: int) -> list[str]:
    '''The argv of `pid` (empty if it is gone or unreadable).'''
    try:
        raw = Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError:
        return []
    return [part.decode(errors='replace') for part in raw.split(b'\0') if part]


def _read_comm(pid: int) -> str:
    '''The kernel's short name of `pid` (`''` if it is gone).'''
    try:
        return Path(f'/proc/{pid}/comm').read_text().strip()
    except OSError:
        return ''


def _read_ppid(pid: int) -> int|None:
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses
    fields = stat.rsplit(')', 1)[1].split()
    return int(fields[1])


def _is_alive(pid: int) -> bool:
    '''Whether a process `pid` exists (a zombie counts as dead).'''
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != 'Z'


def _is_tractor_subactor(pid: int) -> bool:
    '''Whether `pid` is a tractor subactor process (by title or command).'''
    argv = _read_cmdline(pid)
    if not argv:
        return False
    if argv[0].startswith(SUBACTOR_TITLE_PREFIX):
        return True
    return _CHILD_MODULE in argv


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir('/proc') if entry.isdigit()]


def find_descendants(root_pid: int|None = None, zombies: bool = False) -> list[int]:
    '''
    Every live (transitive) child of `root_pid` (default: this process);
    with `zombies`, the exited ones not reaped yet too.
    '''
    root_pid = os.getpid() if root_pid is None else root_pid
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        ppid = _read_ppid(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = list(children.get(root_pid, ()))
    while todo:
        pid = todo.pop()
        if zombies or _is_alive(pid):
            found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


# set by the pytest plugin to its own pid and inherited by every process
# the session starts, so its leftovers can be told from other sessions'
SESSION_ENV_VAR: str = 'TRACTOR_TEST_SESSION'


def _read_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f'/proc/{pid}/environ').read_bytes()
    except OSError:
        return {}
    env: dict[str, str] = {}
    for entry in raw.split(b'\0'):
        key, sep, value = entry.partition(b'=')
        if sep:
            env[key.decode(errors='replace')] = value.decode(errors='replace')
    return env


def find_orphans(session: str|None = None) -> list[int]:
    '''
    This user's tractor subactors whose parent is gone: they were
    re-parented to init (or a sub-reaper) and nobody supervises them.
    With `session`, only those started by that test session (see
    `SESSION_ENV_VAR`).
    '''
    uid = os.getuid()
    orphans: list[int] = []
    for pid in _all_pids():
        try:
            if os.stat(f'/proc/{pid}').st_uid != uid:
                continue
        except OSError:
            continue
        if not _is_tractor_subactor(pid) or not _is_alive(pid):
            continue
        if session is not None and _read_environ(pid).get(SESSION_ENV_VAR) != session:
            continue
        ppid = _read_ppid(pid)
        if ppid is None or ppid == 1 or not _is_tractor_process(ppid):
            orphans.append(pid)
    return orphans


def _is_tractor_process(pid: int) -> bool:
    '''A parent that can be supervising a subactor: an actor, or python.'''
    if _is_tractor_subactor(pid):
        return True
    argv = _read_cmdline(pid)
    return bool(argv) and 'python' in os.path.basename(argv[0])


def is_mp_helper(pid: int) -> bool:
    '''
    A long-lived `multiprocessing` helper (forkserver, resource tracker):
    it legitimately outlives a test, until its process exits.
    '''
    text = ' '.join(_read_cmdline(pid))
    return (
        'multiprocessing.forkserver' in text
        or 'multiprocessing.resource_tracker' in text
    )


def actor_descendants() -> set[int]:
    '''This process's descendants, zombies too, less multiprocessing's helpers.'''
    return {
        pid for pid in find_descendants(zombies=True) if not is_mp_helper(pid)
    }


def describe(pid: int) -> str:
    argv = _read_cmdline(pid)
    return f'pid={pid} {" ".join(argv) if argv else _read_comm(pid)!r}'


def reap(pids: Iterable[int], grace: float = 2.0) -> list[int]:
    '''
    SIGINT each of `pids` (a graceful cancel for an actor), SIGKILL those
    still alive after `grace` seconds; returns the ones that had to be
    killed.
    '''
    pids = [pid for pid in pids if _is_alive(pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_is_alive(pid) for pid in pids):
        time.sleep(0.05)
    killed: list[int] = []
    for pid in pids:
        if _is_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def get_uds_dir() -> str:
    '''The directory actors bind their UDS sockets in by default.'''
    from tractor.ipc._uds import UDSAddress
    return str(UDSAddress.def_bindspace)


def socket_files(uds_dir: str|Path) -> list[Path]:
    '''The actor socket files in `uds_dir` (named `<name>@<pid>...sock`).'''
    try:
        entries = list(Path(uds_dir).iterdir())
    except OSError:
        return []
    return [path for path in entries if path.name.endswith('.sock')]


def find_orphaned_uds(
    uds_dir: str|Path,
    include_registry_sentinel: bool = False,
) -> list[Path]:
    '''
    Socket files in `uds_dir` whose actor (the pid in their name) is
    dead. The default registrar's `registry@1616.sock` names no pid: it
    is only listed when `include_registry_sentinel` (and nothing answers
    on it).
    '''
    orphaned: list[Path] = []
    for path in socket_files(uds_dir):
        if path.name == REGISTRY_SENTINEL:
            if include_registry_sentinel and not _answers(path):
                orphaned.append(path)
            continue
        match = _SOCK_NAME.match(path.name)
        if match and not _is_alive(int(match['pid'])):
            orphaned.append(path)
    return orphaned


def _answers(path: Path) -> bool:
    import socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(0.5)
        sock.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def remove_files(paths: Iterable[Path]) -> list[Path]:
    '''Unlink `paths`; returns the ones actually removed.'''
    removed: list[Path] = []
    for path in paths:
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def main(argv: list[str]|None = None) -> int:
    parser = argparse.ArgumentParser(
        description='List (and reap) orphaned tractor subactors and UDS socket files.',
    )
    parser.add_argument('--kill', action='store_true', help='reap what is found')
    args = parser.parse_args(argv)
    orphans = find_orphans()
    sockets = find_orphaned_uds(get_uds_dir(), include_registry_sentinel=True)
    for pid in orphans:
        print(f'orphaned subactor: {describe(pid)}')
    for path in sockets:
        print(f'orphaned socket file: {path}')
    if args.kill:
        killed = reap(orphans)
        remove_files(sockets)
        print(f'reaped {len(orphans)} subactor(s) ({len(killed)} SIGKILLed), '
              f'removed {len(sockets)} socket file(s)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
