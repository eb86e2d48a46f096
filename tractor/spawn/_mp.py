'''
The `multiprocessing` backends: `mp_spawn` (a fresh interpreter per
actor) and `mp_forkserver` (a fork of a long-lived server process that
already imported tractor and has never run trio; `_forkserver`, with
warmed spares, `_forkserver_spares`).

Either way the child runs `_mp_child.main()`, which boots the very same
runtime as the `trio` backend's `python -m tractor._child` (same
connect-back handshake, same `SpawnSpec`). The parent's `__main__` is
re-imported as `__mp_main__` by multiprocessing itself, which the
runtime detects and does not replay a second time.
'''
from __future__ import annotations

import multiprocessing as mp
from typing import Any

import trio

from ._forkserver import (
    _ASYNC_REQUESTS,
    _fork,
    _forkserver_info,
    _in_subinterpreter,
    _ready_forkserver,
    _register_tracker_stop,
    _starting,
)
from ._forkserver_spares import _spares_for_run
from ._mp_child import (
    MpProcessHandle,
    _child_kwargs,
    _mp_child_main,
)
from ._reason import ReasonPipe
from ._spawn import SpawnArgs

async def _start_forkserver_child(args: SpawnArgs) -> MpProcessHandle:
    pool = _spares_for_run()
    try:
        if pool is not None and (handle := pool.claim(args)) is not None:
            return handle
        info = await _ready_forkserver()
        reason = ReasonPipe()
        try:
            proc = await _fork(
                _process_kwargs(args, 'mp_forkserver', info, reason),
                info,
                inherit_parent_main=args.inherit_parent_main,
            )
        except BaseException:
            reason.close()
            raise
        reason.close_child_end()
        return MpProcessHandle(proc, forkserver=True, reason=reason)
    finally:
        if pool is not None:
            pool.spawned()

def _process_kwargs(
    args: SpawnArgs,
    spawn_method: str,
    info: tuple[Any, bytes|None]|None,
    reason: ReasonPipe,
) -> dict[str, Any]:
    '''The `multiprocessing.Process` of a child spawning `args`.'''
    name, uuid = args.uid
    return dict(
        target=_mp_child_main,
        kwargs=dict(
            _child_kwargs(args, spawn_method, info),
            # multiprocessing duplicates its fd into the child
            reason_writer=reason.writer,
        ),
        name=f'{name}@{uuid[:8]}',
    )


async def _start(
    args: SpawnArgs,
    ctx: Any,
    spawn_method: str,
    forkserver: bool,
) -> MpProcessHandle:
    if args.proc_kwargs:
        # refused, not ignored: multiprocessing starts the child itself
        raise ValueError(
            f'`proc_kwargs` do not apply to the {spawn_method!r} spawn backend '
            f'(multiprocessing starts the process): {args.proc_kwargs!r}'
        )
    if forkserver and _ASYNC_REQUESTS:
        return await _start_forkserver_child(args)

    def start() -> Any:
        if _in_subinterpreter():
            # before the forkserver's hook: that one runs first (LIFO)
            # and the server holds the tracker's pipe too
            _register_tracker_stop()
        # even when not sharing it, our own server must be started with
        # the preload and the exit hook
        info = _forkserver_info() if forkserver else None
        reason = ReasonPipe()
        proc = ctx.Process(**_process_kwargs(args, spawn_method, info, reason))
        _starting.without_main = not args.inherit_parent_main
        try:
            proc.start()
        except BaseException:
            reason.close()
            raise
        finally:
            _starting.without_main = False
        reason.close_child_end()
        return proc, reason

    # starting blocks: a fork+exec and a pipe write (spawn), a round trip
    # with the forkserver (forkserver) and, the first time, its boot and
    # preload. Uncancellable on purpose: once started, the child must be
    # handed back to be supervised (and reaped).
    proc, reason = await trio.to_thread.run_sync(start)
    return MpProcessHandle(proc, forkserver=forkserver, reason=reason)


async def mp_spawn_proc(args: SpawnArgs) -> MpProcessHandle:
    return await _start(args, mp.get_context('spawn'), 'mp_spawn', forkserver=False)


async def mp_forkserver_proc(args: SpawnArgs) -> MpProcessHandle:
    return await _start(
        args, mp.get_context('forkserver'), 'mp_forkserver', forkserver=True,
    )
