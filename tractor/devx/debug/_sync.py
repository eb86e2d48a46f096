'''
Sync entry points of the debugger: `pause_from_sync()`, the builtin
`breakpoint()` hook, and post-mortems from sync code. The locks are taken
from wherever the caller runs: a `trio.to_thread` worker (a trip to trio's
thread), a trio task (its greenback portal), or an asyncio task of an
`infect_asyncio` actor (its greenback portal, waiting on a trio task).
'''
from __future__ import annotations

import os
import sys
import threading
from typing import (
    Any,
    Callable,
)

import trio

from tractor import log
from tractor._exceptions import NoRuntime
from tractor.devx._greenback import import_greenback
from tractor.runtime import _state

from ._trace import (
    _Session,
    _acquire,
    _crash_msg,
    _end_session,
    _format_tb,
    _header,
    _in_trio_thread,
    _need_debug_mode,
    _pause_msg,
    _reentered,
    _set_trace,
    _task_uid,
)

logger = log.get_logger()


def _sync_acquire(kind: str) -> _Session:
    '''Take the locks from sync code: greenback in trio's thread, else a trip to it.'''
    actor = _state.current_actor()
    if _in_trio_thread():
        try:
            greenback = import_greenback()
        except ModuleNotFoundError as err:
            raise RuntimeError(
                'A sync pause from the trio thread needs `greenback` '
                '(`pip install "tractor[devx]"`) and '
                '`maybe_enable_greenback=True`'
            ) from err
        if not greenback.has_portal():
            raise RuntimeError(
                'This task has no greenback portal: open the root with '
                '`maybe_enable_greenback=True` to pause from sync code'
            )
        return greenback.await_(_acquire(kind, _task_uid()))
    if (task := _current_asyncio_task()) is not None:
        return _acquire_from_asyncio(kind, task, actor)
    thread = threading.current_thread()
    return trio.from_thread.run(
        _acquire, kind, (thread.name, thread.ident),
        trio_token=actor._trio_token,
    )


def _current_asyncio_task() -> Any:
    '''The running asyncio task, if we are in one (only ever imported by then).'''
    asyncio = sys.modules.get('asyncio')
    if asyncio is None:
        return None
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _acquire_from_asyncio(kind: str, task: Any, actor: Any) -> _Session:
    '''
    An asyncio task of an `infect_asyncio` actor shares trio's thread, so
    it can neither block for trio nor enter it: a trio task takes the
    locks and resolves a future the asyncio task waits on through its own
    greenback portal.
    '''
    import asyncio
    try:
        greenback = import_greenback()
    except ModuleNotFoundError as err:
        raise RuntimeError(
            'A sync pause from an asyncio task needs `greenback` '
            '(`pip install "tractor[devx]"`)'
        ) from err
    if not greenback.has_portal():
        raise RuntimeError(
            'This asyncio task has no greenback portal: run the tree with '
            '`maybe_enable_greenback=True` (the tasks `tractor.to_asyncio` '
            'starts then get one), or `await greenback.ensure_portal()` in '
            'it first'
        )
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    async def _take() -> None:
        try:
            session = await _acquire(kind, (task.get_name(), id(task)))
        except BaseException as err:
            loop.call_soon_threadsafe(_settle, done, None, err)
            raise
        loop.call_soon_threadsafe(_settle, done, session, None)

    actor._trio_token.run_sync_soon(actor._service_tn.start_soon, _take)
    return greenback.await_(done)


def _settle(fut: Any, value: Any, err: BaseException|None) -> None:
    if fut.done():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(value)


def pause_from_sync(
    hide_tb: bool = True,
    called_from_builtin: bool = False,
    api_frame: Any = None,
    allow_no_runtime: bool = False,
    **kwargs: Any,
) -> None:
    '''
    `pause()` for sync code: from a `trio.to_thread` worker thread, or
    from trio's own thread through `greenback` (needs
    `maybe_enable_greenback=True`). Without a runtime it raises `NoRuntime`
    unless `allow_no_runtime`, then it is a plain (unlocked) REPL.
    '''
    __tracebackhide__: bool = hide_tb
    frame = api_frame or sys._getframe(1)
    actor = _state.current_actor(err_on_no_runtime=False)
    if actor is None:
        if not allow_no_runtime:
            raise NoRuntime(
                '`pause_from_sync()` needs a running actor (or '
                '`allow_no_runtime=True` for a plain REPL)'
            )
        from ._repl import mk_pdb
        _set_trace(mk_pdb(**kwargs), frame)
        return
    _need_debug_mode('`tractor.pause_from_sync()`')
    if _in_trio_thread():
        me = _task_uid()
        who = repr(trio.lowlevel.current_task())
    elif (task := _current_asyncio_task()) is not None:
        me = (task.get_name(), id(task))
        who = f'asyncio task {task.get_name()!r}'
    else:
        me = (threading.current_thread().name, threading.get_ident())
        who = f'thread {threading.current_thread().name!r}'
    if _reentered(me, frame, actor, who, **kwargs):
        return
    session = _sync_acquire('pause')
    from ._repl import mk_pdb
    session.repl = repl = mk_pdb(**kwargs)
    logger.pdb(_header(_pause_msg, actor, who))
    _set_trace(repl, frame)


def _sync_pause_from_builtin(*args: Any, **kwargs: Any) -> None:
    '''What builtin `breakpoint()` calls in a debug-mode actor.'''
    __tracebackhide__: bool = True
    pause_from_sync(called_from_builtin=True, api_frame=sys._getframe(1), **kwargs)


def _no_breakpoint(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError(
        'Builtin `breakpoint()` inside a tractor actor needs debug mode '
        '(`debug_mode=True`) so that actors share the terminal one at a '
        'time; to break from the trio thread also install `greenback` and '
        'pass `maybe_enable_greenback=True` (or `await tractor.pause()`)'
    )


def sync_post_mortem(err: BaseException, repl_fixture: Callable|None = None) -> None:
    '''
    A post-mortem REPL from sync code: locked when a runtime runs (and we
    can reach its loop), a plain one otherwise (pre-runtime / CLI code).
    '''
    from ._repl import mk_pdb
    actor = _state.current_actor(err_on_no_runtime=False)
    session = None
    if actor is not None and _state.debug_mode():
        try:
            session = _sync_acquire('crash')
        except RuntimeError as why:
            logger.warning(f'Opening an unlocked REPL: {why}')
    try:
        repl = mk_pdb()
        if session is not None:
            session.repl = repl
        where = actor.aid.uid if actor is not None else f'pid {os.getpid()}'
        logger.pdb(f'{_crash_msg}\n{where!r}\n{_format_tb(err)}')
        if repl_fixture is not None:
            with repl_fixture():
                repl.reset()
                repl.interaction(None, err.__traceback__)
        else:
            repl.reset()
            repl.interaction(None, err.__traceback__)
    finally:
        if session is not None:
            _end_session()
