'''
Installing the debugger into an actor as it boots: the core's hooks
(`tractor.runtime._debug_hooks`), the root's tty lock, SIGINT and the
builtin `breakpoint()`. Everything is undone on the actor's
`lifetime_stack`.
'''
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import trio

from tractor import log
from tractor.discovery._api import get_root
from tractor.runtime import (
    _debug_hooks,
    _state,
)

from . import (
    _sync,
    _trace,
    _tty_lock,
)

logger = log.get_logger()

# bound on asking the root whether the lock is held (it answers at once
# unless it is gone or wedged)
ROOT_QUERY_TIMEOUT: float = 5.0


class _RootHooks:
    '''In the root: the lock is local, so the answers are too.'''

    async def crashed(self, actor: Any, err: BaseException, ctx: Any) -> None:
        await _trace._crash_repl(actor, err, ctx)

    async def repl_in_use(self) -> bool:
        state = _tty_lock._root_state
        return (
            state is not None
            and state.lock.locked()
            and not _tty_lock._held_by_root_task()
        )

    async def wait_for_tty(self) -> None:
        state = _tty_lock._root_state
        if state is None or _tty_lock._held_by_root_task():
            # a root task's REPL blocks this thread: it is over by now
            return
        if state.lock.locked():
            logger.devx(f'Waiting for the tty lock held by {state.lock.owner[0]!r}')
        with trio.CancelScope(shield=True):
            while state.lock.locked() and not _tty_lock._held_by_root_task():
                await state.lock.wait_free()

    async def wait_for_local_repl(self) -> None:
        await _wait_local()

    def peer_disconnected(self, chan: Any, graceful: bool) -> None:
        _tty_lock.peer_disconnected(chan, graceful)

    async def before_ctx_cancel(self, ctx: Any) -> None:
        if not _is_lock_dialog(ctx):
            await self.wait_for_tty()


class _SubactorHooks:
    '''In a subactor: ask the root (debug mode only, never per message).'''

    async def crashed(self, actor: Any, err: BaseException, ctx: Any) -> None:
        await _trace._crash_repl(actor, err, ctx)

    async def repl_in_use(self) -> bool:
        status = _trace._status
        if status is not None and status.session is not None:
            return True
        return bool(await _ask_root(_tty_lock.lock_is_held, wait=False))

    async def wait_for_tty(self) -> None:
        status = _trace._status
        if status is not None and status.session is not None:
            # it is ours: our REPL's task can not wait for itself
            return
        await _ask_root(_tty_lock.wait_for_release, wait=True)

    async def wait_for_local_repl(self) -> None:
        await _wait_local()

    def peer_disconnected(self, chan: Any, graceful: bool) -> None:
        pass

    async def before_ctx_cancel(self, ctx: Any) -> None:
        if not _is_lock_dialog(ctx):
            await self.wait_for_tty()


def _is_lock_dialog(ctx: Any) -> bool:
    '''
    A dialog of the debugger's own with the root (lock request, lock
    query): cancelling it never waits for the lock, it would wait for
    itself (a cancelled request still queued would be handed the lock).
    '''
    return str(ctx._nsf).startswith(f'{_tty_lock.__name__}:')


async def _wait_local() -> None:
    status = _trace._status
    with trio.CancelScope(shield=True):
        while status is not None and status.session is not None:
            await status.session.release.wait()


async def _ask_root(endpoint: Any, wait: bool) -> Any:
    '''Run a lock query on the root; a root that is gone means "not held".'''
    if _state._runtime_vars['_root_mailbox'][0] is None:
        return False
    with trio.CancelScope(shield=True) as cs:
        if not wait:
            cs.deadline = trio.current_time() + ROOT_QUERY_TIMEOUT
        try:
            async with get_root() as portal:
                async with portal.open_context(endpoint) as (ctx, _first):
                    return await ctx.wait_for_result()
        except Exception as err:
            logger.devx(f'Could not ask the root about the tty lock: {err!r}')
    return False


def _defer_sigint(signum: int, frame: Any) -> None:
    '''
    A debug-mode subactor leaves Ctrl-C to the root: a REPL may be open
    anywhere in the tree, and the root ends the tree in order (over IPC)
    once it is released.
    '''
    status = _trace._status
    if status is not None and status.session is not None:
        _trace._on_sigint_in_repl(signum, frame)
        return
    logger.devx('SIGINT ignored in a debug-mode subactor: the root handles Ctrl-C')


def _install_breakpoint(actor: Any, debug: bool) -> None:
    '''The builtin `breakpoint()`: our REPL in debug mode, else refused.'''
    prev_hook = sys.breakpointhook
    sys.breakpointhook = (
        _sync._sync_pause_from_builtin if debug else _sync._no_breakpoint
    )

    def _restore_hook() -> None:
        sys.breakpointhook = prev_hook

    actor.lifetime_stack.callback(_restore_hook)
    if not actor.is_root:
        # the environment is the process's: sub-interpreter actors share it
        return
    prev_env = os.environ.get('PYTHONBREAKPOINT')
    os.environ['PYTHONBREAKPOINT'] = (
        'tractor.devx.debug._sync_pause_from_builtin' if debug else '0'
    )

    def _restore_env() -> None:
        if prev_env is None:
            os.environ.pop('PYTHONBREAKPOINT', None)
        else:
            os.environ['PYTHONBREAKPOINT'] = prev_env

    actor.lifetime_stack.callback(_restore_env)


def _maybe_enable_for(actor: Any) -> None:
    '''Boot hook: every root owns a tty lock; debug-mode actors get the rest.'''
    debug = _state.debug_mode()
    if actor.is_root:
        _tty_lock._boot_root(actor)
        # Ctrl-C at a REPL of this process (ours, or a sub-interpreter
        # child's, which gets no signal itself) shows the prompt again
        _tty_lock._root_state.reprint_prompt = _trace._reprint_prompt
        hooks: Any = _RootHooks()
        _install_breakpoint(actor, debug)
    elif debug:
        hooks = _SubactorHooks()
        _install_breakpoint(actor, debug)
        if threading.current_thread() is threading.main_thread():
            try:
                prev = signal.signal(signal.SIGINT, _defer_sigint)
            except ValueError:
                prev = None  # a sub-interpreter: no signals here
            if prev is not None:
                actor.lifetime_stack.callback(signal.signal, signal.SIGINT, prev)
    else:
        return
    _trace._status = None
    previous = _debug_hooks._set(hooks)

    def _uninstall() -> None:
        _debug_hooks._set(previous)
        _trace._status = None

    actor.lifetime_stack.callback(_uninstall)
