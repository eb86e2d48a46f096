'''
REPL sessions: `pause()`, `post_mortem()`, the crash REPL of a failed RPC
task (the sync entries, which end up here too, are in `_sync`).

A session first takes this actor's local lock (tasks of one actor queue),
then the tree-wide tty lock (directly in the root, through a context on
the root in a subactor), then runs the REPL. Ending it (`c`, `q`, or the
post-mortem returning) hands both back. The REPL runs on the thread that
asked for it: the trio thread (which it blocks, like any sync code) or a
worker thread.
'''
from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from typing import Any

import trio

from tractor import log
from tractor._exceptions import (
    ContextCancelled,
    DebugRequestError,
)
from tractor.discovery._api import get_root
from tractor.runtime import _state
from tractor.trionics._eg import is_multi_cancelled

from . import _tty_lock
from ._tty_lock import (
    FifoLock,
    LockRelease,
    _ctlc_ignore_header,
)

logger = log.get_logger()

_pause_msg: str = 'Opening a pdb REPL in paused actor'
_crash_msg: str = 'Opening a pdb REPL in crashed actor'
_repl_fail_msg: str = 'Failed to REPl via `_pause()` '


class _Session:
    '''One REPL session of this actor, from lock taken to lock handed back.'''

    def __init__(self, owner: tuple, kind: str) -> None:
        self.owner = owner
        self.kind = kind
        self.thread = threading.get_ident()
        self.trio_token = trio.lowlevel.current_trio_token()
        self.repl: Any = None
        # subactor: the lock requester waits on it, then sends `LockRelease`
        self.release = trio.Event()
        self.ended = False


class _ActorDebugState:
    '''Per actor (per interpreter): its local lock and current session.'''

    def __init__(self) -> None:
        self.local_lock = FifoLock()
        self.session: _Session|None = None
        self.prev_sigint: Any = None


_status: _ActorDebugState|None = None


def _state_for_actor() -> _ActorDebugState:
    global _status
    if _status is None:
        _status = _ActorDebugState()
    return _status


def _task_uid() -> tuple[str, int]:
    task = trio.lowlevel.current_task()
    return (task.name, id(task))


def _in_trio_thread() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


async def _request_root_lock(
    actor: Any,
    task_uid: tuple[str, int],
    session: _Session,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    '''
    Hold the root's tty lock for `session` (runs in the service nursery,
    so it outlives the REPL's blocking of the requesting task).
    '''
    started = False
    try:
        async with get_root() as portal:
            async with portal.open_context(
                _tty_lock.lock_stdio_for_peer,
                subactor_task_uid=task_uid,
            ) as (ctx, status):
                if not getattr(status, 'locked', False):
                    raise DebugRequestError(f'The root did not lock the tty: {status!r}')
                async with ctx.open_stream() as stream:
                    task_status.started()
                    started = True
                    await session.release.wait()
                    await stream.send(LockRelease(subactor_uid=actor.aid.uid, cid=ctx.cid))
                await ctx.wait_for_result()
    except Exception as err:
        if started:
            # the REPL is over: a root that went away meanwhile (which
            # frees its lock anyway) must not take this actor down with it
            logger.warning(f'The tty lock dialog with the root ended badly: {err!r}')
            return
        if isinstance(err, DebugRequestError):
            raise
        if isinstance(err, ContextCancelled) and err.canceller != actor.aid.uid:
            raise DebugRequestError(
                f'The root refused the tty lock to {actor.aid.uid!r}: it is '
                'cancelling, or tearing this actor down (see its log)'
            ) from err
        raise DebugRequestError(
            f'{actor.aid.uid!r} could not get the tty lock from the root: {err!r}'
        ) from err


async def _acquire(kind: str, task_uid: tuple) -> _Session:
    '''Take the local lock then the tree-wide one; returns the new session.'''
    actor = _state.current_actor()
    status = _state_for_actor()
    owner = (actor.aid.uid, task_uid, os.getpid(), None)
    await status.local_lock.acquire(owner)
    session = _Session(owner, kind)
    try:
        if actor.is_root:
            await _tty_lock._root_lock().acquire(owner)
        else:
            await actor._service_tn.start(_request_root_lock, actor, task_uid, session)
    except BaseException:
        status.local_lock.release()
        raise
    status.session = session
    from . import _repl
    _repl._on_release = _repl_ended
    _shield_sigint(actor, status)
    return session


def _end_session() -> None:
    '''Hand the locks back (sync; from the REPL's thread, whichever it is).'''
    status = _status
    session = status.session if status is not None else None
    if session is None or session.ended:
        return
    session.ended = True

    if session.repl is not None:
        from ._repl import close_tty
        close_tty(session.repl)

    def _hand_back() -> None:
        status.session = None
        _restore_sigint(status)
        if _state.is_root_process() and _tty_lock._root_state is not None:
            _tty_lock._root_state.release(session.owner)
        session.release.set()
        status.local_lock.release()

    if threading.get_ident() != session.thread:
        trio.from_thread.run_sync(_hand_back, trio_token=session.trio_token)
    elif _in_trio_thread():
        _hand_back()
    else:
        # trio's thread but outside trio (an asyncio task of an infected
        # actor): trio objects are only touched from trio's own loop
        session.trio_token.run_sync_soon(_hand_back)


def _shield_sigint(actor: Any, status: _ActorDebugState) -> None:
    '''Ctrl-C re-prints the prompt instead of killing the REPL's actor.'''
    if actor.is_root:
        # the root's lock state shields it while anybody holds the lock
        return
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        status.prev_sigint = signal.signal(signal.SIGINT, _on_sigint_in_repl)
    except ValueError:
        # a sub-interpreter: only the root's process gets signals, and it
        # re-prints the prompt for us
        status.prev_sigint = None


def _restore_sigint(status: _ActorDebugState) -> None:
    prev, status.prev_sigint = status.prev_sigint, None
    if prev is not None:
        try:
            signal.signal(signal.SIGINT, prev)
        except ValueError:
            pass


def _on_sigint_in_repl(signum: int, frame: Any) -> None:
    logger.pdb(_ctlc_ignore_header)
    _reprint_prompt()


def _reprint_prompt() -> None:
    status = _status
    repl = status.session.repl if status and status.session else None
    prompt = getattr(repl, 'prompt', '(Pdb+) ')
    _tty_lock._write(f'\n{prompt}')


def _header(kind_msg: str, actor: Any, who: str) -> str:
    return f'{kind_msg}\n{actor.aid.uid!r}\n|_{who}\n'


def _set_trace(repl: Any, frame: Any) -> None:
    '''
    `Bdb.set_trace(frame)`, but stopping at `frame`'s next line only: the
    stdlib steps into the very next event, which is in our own frames on
    their way back to the caller.
    '''
    repl._via_set_trace_frame = frame  # what pdbp's `set_trace` records
    repl.stop_trace()
    repl.reset()
    saved = getattr(repl, 'frame_trace_lines_opcodes', None)
    walk = frame
    while walk is not None:
        walk.f_trace = repl.trace_dispatch
        repl.botframe = walk
        if saved is not None:
            saved[walk] = (walk.f_trace_lines, walk.f_trace_opcodes)
        walk.f_trace_lines = True
        walk = walk.f_back
    repl.set_next(frame)
    repl.start_trace()


def _reentered(me: tuple, frame: Any, actor: Any, who: str, **kwargs: Any) -> bool:
    '''
    Whether `me` already holds this actor's session, in which case there
    is nothing to take: a pause by the task already in the REPL (the user
    stepped onto another `pause()`) is a no-op, the REPL goes on as the
    user drives it; inside an `acquire_debug_lock()` block (locks held, no
    REPL yet) the REPL opens within that session.
    '''
    session = _held_by(me)
    if session is None:
        return False
    if session.repl is None:
        from ._repl import mk_pdb
        session.repl = repl = mk_pdb(**kwargs)
        logger.pdb(_header(_pause_msg, actor, who))
        _set_trace(repl, frame)
    else:
        logger.devx(f'{who} is already in the REPL: re-entrant pause ignored')
    return True


def _held_by(me: tuple) -> _Session|None:
    '''This actor's session if `me` holds it.'''
    status = _status
    session = status.session if status is not None else None
    if session is None or session.ended or session.owner[1] != me:
        return None
    return session


def _stop_tracing(repl: Any) -> None:
    try:
        repl.stop_trace()
    except Exception:
        sys.settrace(None)


def _repl_ended() -> None:
    '''
    The user ended a REPL (`c`/`q`): the session ends with it, unless the
    REPL was opened inside an `acquire_debug_lock()` block, which keeps
    the locks until it exits.
    '''
    status = _status
    session = status.session if status is not None else None
    if session is not None and session.kind == 'lock' and not session.ended:
        repl, session.repl = session.repl, None
        if repl is not None:
            from ._repl import close_tty
            close_tty(repl)
        return
    _end_session()


def _need_debug_mode(what: str) -> None:
    if not _state.debug_mode():
        raise RuntimeError(
            f'{what} needs debug mode: pass `debug_mode=True` to '
            '`open_root_actor()`/`open_nursery()` (or to `start_actor()`)'
        )


async def _pause(frame: Any, *, repl_fixture: Any = None, **kwargs: Any) -> None:
    '''Lock the tty for this task and stop at `frame`'s next line.'''
    actor = _state.current_actor()
    _need_debug_mode('`tractor.pause()`')
    task = trio.lowlevel.current_task()
    if _reentered(_task_uid(), frame, actor, repr(task), **kwargs):
        return
    try:
        session = await _acquire('pause', _task_uid())
    except trio.Cancelled:
        raise
    except BaseException as err:
        logger.exception(f'{_repl_fail_msg}{err!r}')
        raise
    from ._repl import mk_pdb
    session.repl = repl = mk_pdb(**kwargs)
    logger.pdb(_header(_pause_msg, actor, repr(task)))
    _set_trace(repl, frame)


async def pause(
    *,
    hide_tb: bool = True,
    api_frame: Any = None,
    shield: bool = False,
    **kwargs: Any,
) -> None:
    '''
    Stop the calling task in a `(Pdb+)` REPL at the caller's frame, once
    this task holds the tree-wide tty lock (taken from the root over IPC
    in a subactor). `c` continues, `q` raises `bdb.BdbQuit` here.

    `shield=True` works from an already cancelled scope.
    '''
    __tracebackhide__: bool = hide_tb
    frame = api_frame or sys._getframe(1)
    if shield:
        with trio.CancelScope(shield=True):
            await _pause(frame, **kwargs)
        return
    try:
        await _pause(frame, **kwargs)
    except trio.Cancelled:
        logger.pdb(
            '`tractor.pause()` was called from a cancelled scope; pass '
            '`shield=True` to REPL from there'
        )
        raise


async def breakpoint(**kwargs: Any) -> None:
    '''Deprecated alias of `pause()`.'''
    __tracebackhide__: bool = True
    logger.warning('`tractor.breakpoint()` is deprecated; use `tractor.pause()`')
    await pause(api_frame=sys._getframe(1), **kwargs)


def _skip_crash_repl(err: BaseException, actor: Any) -> bool:
    bdb = sys.modules.get('bdb')
    if bdb is not None and isinstance(err, bdb.BdbQuit):
        # the user quit a REPL: no second one for that
        return True
    if isinstance(err, (trio.Cancelled, KeyboardInterrupt)):
        return True
    if isinstance(err, BaseExceptionGroup) and (
        is_multi_cancelled(err)
        or all(isinstance(e, (trio.Cancelled, KeyboardInterrupt)) for e in err.exceptions)
    ):
        return True
    if isinstance(err, ContextCancelled):
        # only a cancel this actor asked for is worth a look
        return err.canceller != actor.aid.uid
    return False


def _format_tb(err: BaseException) -> str:
    return ''.join(traceback.format_exception(err))


async def _post_mortem(
    err: BaseException|None,
    tb: Any,
    header: str,
    **kwargs: Any,
) -> None:
    '''A post-mortem REPL on `tb`, holding the tty lock (shielded).'''
    actor = _state.current_actor()
    task = trio.lowlevel.current_task()
    with trio.CancelScope(shield=True):
        session = _held_by(_task_uid())
        keep_lock = session is not None and session.kind == 'lock'
        if session is None:
            session = await _acquire('crash', _task_uid())
        elif session.repl is not None:
            # this task stepped from its pause REPL into a crash (its
            # session is ours already: taking the locks again would wait
            # for ourselves); the post-mortem replaces the stepping REPL
            _stop_tracing(session.repl)
        try:
            from ._repl import mk_pdb
            session.repl = repl = mk_pdb(**kwargs)
            text = _header(header, actor, repr(task))
            if err is not None:
                text += _format_tb(err)
            logger.pdb(text)
            repl.reset()
            repl.interaction(None, tb)
        finally:
            if keep_lock:
                # an `acquire_debug_lock()` block: it releases on its exit
                _repl_ended()
            else:
                _end_session()
        # let the requester hand the root its lock back before we go on
        await trio.lowlevel.checkpoint()


async def post_mortem(
    *,
    tb: Any = None,
    api_frame: Any = None,
    hide_tb: bool = False,
    **kwargs: Any,
) -> None:
    '''
    A post-mortem REPL on `tb` (default: the exception being handled),
    like `pdb.post_mortem()` but taking the tree-wide tty lock first.
    '''
    __tracebackhide__: bool = hide_tb
    _need_debug_mode('`tractor.post_mortem()`')
    err = sys.exc_info()[1]
    if tb is None:
        if err is None:
            raise ValueError('`post_mortem()` outside of an exception handler needs `tb=`')
        tb = err.__traceback__
    await _post_mortem(err, tb, _crash_msg, **kwargs)


async def _crash_repl(actor: Any, err: BaseException, ctx: Any) -> None:
    '''The core's crash hook: a post-mortem REPL in the failing actor.'''
    if not _state.debug_mode() or _skip_crash_repl(err, actor):
        return
    if err.__traceback__ is None:
        return
    try:
        await _post_mortem(err, err.__traceback__, _crash_msg)
    except DebugRequestError as dre:
        # the root is gone or refused: the error still travels on
        logger.warning(f'No crash REPL for {err!r}: {dre}')
    except Exception as repl_err:
        # e.g. no terminal to read: never let the REPL mask the crash
        logger.exception(f'{_repl_fail_msg}for {err!r}: {repl_err!r}')
