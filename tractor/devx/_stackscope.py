'''
Task-tree dumps on a signal: with `enable_stack_on_sig()` a `SIGUSR1`
makes an actor print the tree of its trio tasks (with each task's
stack, via `stackscope`) to stderr, and relay the signal to its child
processes so a whole actor tree dumps at once.

Enabled in every actor of a tree by `open_root_actor(
enable_stack_on_sig=True)`, or by `$TRACTOR_ENABLE_STACKSCOPE` (what the
pytest plugin's `--enable-stackscope` exports).
'''
from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
import warnings
from typing import (
    Any,
    Callable,
)

import trio

from tractor import log
from tractor.runtime import _state

logger = log.get_logger()

ENV_VAR: str = 'TRACTOR_ENABLE_STACKSCOPE'


def _import_stackscope() -> Any:
    try:
        with warnings.catch_warnings():
            # it warns (once) where its frame inspection tricks fall short
            warnings.simplefilter('ignore')
            import stackscope
    except ImportError as err:
        raise ModuleNotFoundError(
            'Task-tree dumps need `stackscope`: install it, e.g. '
            '`pip install "tractor[devx]"`'
        ) from err
    return stackscope


def _task_lines(stackscope: Any, task: trio.lowlevel.Task, depth: int) -> list[str]:
    pad = '    ' * depth
    stack = str(stackscope.extract(task)).splitlines()[1:]
    lines = [f'{pad}task {task.name!r}:']
    lines += [f'{pad}  {line}' for line in stack]
    # the tree walk is trio's, so it holds even where stackscope cannot
    # find nurseries in frames (its frame tricks fail on some pythons)
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            lines += _task_lines(stackscope, child, depth + 1)
    return lines


def dump_task_tree() -> str:
    '''
    The current trio run's task tree, each task with its stack, as text
    (call it from inside the run).
    '''
    stackscope = _import_stackscope()
    with (
        warnings.catch_warnings(),
        # its one-time self check may print a traceback where it falls short
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter('ignore')
        lines = _task_lines(stackscope, trio.lowlevel.current_root_task(), 0)
    actor = _state.current_actor(err_on_no_runtime=False)
    who = actor.aid.reprol(sin_uuid=False) if actor else f'pid {os.getpid()}'
    return '\n'.join([f'Task tree of {who}:', *lines, ''])


def _print_tree() -> None:
    try:
        text = dump_task_tree()
    except Exception as err:
        text = f'Task-tree dump failed: {err!r}\n'
    print(text, file=sys.stderr, flush=True)


def _child_pids() -> list[int]:
    actor = _state.current_actor(err_on_no_runtime=False)
    if actor is None:
        return []
    pids = []
    nurseries = {id(an): an for an in actor._actoruid2nursery.values()}
    for an in nurseries.values():
        for _, _, portal in an._children.values():
            pid = portal.chan.aid.pid if portal and portal.chan.aid else None
            # a subint child lives in our process: no signal reaches it
            if pid and pid != os.getpid():
                pids.append(pid)
    return pids


def _on_signal(signum: int, frame: Any) -> None:
    token = None
    actor = _state.current_actor(err_on_no_runtime=False)
    if actor is not None:
        token = actor._trio_token
    if token is None:
        try:
            token = trio.lowlevel.current_trio_token()
        except RuntimeError:
            print('No trio run to dump the tasks of', file=sys.stderr)
    if token is not None:
        # walk the tree from inside the run, not from this interrupted frame
        token.run_sync_soon(_print_tree)
    for pid in _child_pids():
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def enable_stack_on_sig(
    sig: int = signal.SIGUSR1,
) -> Callable|int|None:
    '''
    Dump this process's trio task tree to stderr on `sig` (and relay it
    to child actor processes). Returns the handler it replaced. Only the
    main thread of the main interpreter can install signal handlers:
    elsewhere nothing is installed and `None` is returned.
    '''
    _import_stackscope()
    if threading.current_thread() is not threading.main_thread():
        logger.devx('Task-tree dumps: not the main thread, no handler')
        return None
    try:
        return signal.signal(sig, _on_signal)
    except ValueError as err:
        # e.g. inside a sub-interpreter
        logger.devx(f'Task-tree dumps: no handler here ({err})')
        return None


def _maybe_enable_for(actor: Any) -> None:
    wanted = (
        _state._runtime_vars.get('use_stackscope')
        or os.environ.get(ENV_VAR)
    )
    if not wanted:
        return
    try:
        previous = enable_stack_on_sig()
    except ModuleNotFoundError as err:
        if _state._runtime_vars.get('use_stackscope'):
            raise
        logger.warning(f'${ENV_VAR} is set but {err}')
        return
    if previous is not None:
        actor.lifetime_stack.callback(signal.signal, signal.SIGUSR1, previous)
