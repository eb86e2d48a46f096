'''
The child side of spawning: what runs in a new actor (process or
sub-interpreter) to build its `Actor` and run the runtime until its parent
cancels it. Every backend ends up here.
'''
from __future__ import annotations

import signal
from functools import partial
from typing import (
    Any,
    Awaitable,
    Callable,
)

import trio

from tractor import log
from tractor.ipc._auth import (
    Secret,
    set_secret,
)
from tractor.runtime import _state
from tractor.runtime._boot import async_main
from tractor.runtime._runtime import Actor

from . import _spawn
from ._reason import LOST_PARENT_EXIT

# Runs an actor's `async_main` with trio as the guest of an asyncio loop
# (`infect_asyncio=True`), returning or raising like `trio.run()`. The
# package installs it (`tractor.to_asyncio.run_as_asyncio_guest`, loaded
# on first use): asyncio lives in a layer above this one.
asyncio_host: Callable[[Callable[[], Awaitable[Any]]], Any]|None = None


# how long a terminated actor waits for its own children to end (less
# than its parent waits before it kills it)
TERMINATE_CHILDREN_BOUND: float = _spawn.REAP_GRACE * 0.6


def _on_sigterm(signum: int, _frame: Any) -> None:
    '''
    Terminated: die at once, as without a handler, but not alone: first
    terminate (then kill) every child process this actor still has, or
    they would run on as orphans (each of them does the same with its
    own). Its `subint` children end with the process.
    '''
    try:
        _spawn.end_unreaped_children(TERMINATE_CHILDREN_BOUND, processes_only=True)
    finally:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def _actor_child_main(
    uid: tuple[str, str],
    parent_addr: Any,
    loglevel: str|None = None,
    infect_asyncio: bool = False,
    spawn_method: str = 'trio',
    secret: Secret|None = None,
) -> int:
    '''
    Run a child actor in this process (or sub-interpreter) to completion.
    `spawn_method` is the backend that started it, and so the default of
    its own nurseries. `secret` is the tree's secret as the parent handed
    it down (without one, the child resolves its own like a root would).

    Returns the exit status to end with: 0, or `LOST_PARENT_EXIT` when
    the actor cancelled itself because it lost its parent unasked (so
    its parent can tell that from a clean end).
    '''
    if secret is not None:
        set_secret(secret)
    if spawn_method != 'subint':
        # a process of its own: terminated, it must not orphan its subtree
        signal.signal(signal.SIGTERM, _on_sigterm)
    # one actor per interpreter: the interpreter's default is the actor's
    _spawn.try_set_start_method(spawn_method)
    name, uuid = uid
    actor = Actor(name, uuid, loglevel=loglevel, spawn_method=spawn_method)
    _state._set_current_actor(actor)
    if loglevel:
        # the package logger, like the root's: every module's records
        # formatted, until the spawn spec brings the parent's full setup
        log.get_console_log(loglevel, name=log._proj_name)
    try:
        if infect_asyncio:
            if asyncio_host is None:
                raise RuntimeError(
                    '`infect_asyncio=True` needs `tractor.to_asyncio`, which '
                    'was not installed (import `tractor`, not only its submodules)'
                )
            actor._infected_aio = True
            asyncio_host(partial(async_main, actor, None, parent_addr))
        else:
            trio.run(async_main, actor, None, parent_addr)
    except KeyboardInterrupt:
        pass
    finally:
        _state._set_current_actor(None)
    return LOST_PARENT_EXIT if actor._lost_parent else 0
