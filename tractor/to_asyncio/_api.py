'''
What trio code calls to drive asyncio code: `run_task()` and
`open_channel_from()`, both pairing the calling trio task with a new
asyncio task (see `_pair`).
'''
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
    Callable,
)

import trio

from tractor import log
from tractor._exceptions import (
    TrioCancelled,
    TrioTaskExited,
)
from tractor.runtime import _state

from ._pair import (
    LinkedTaskChannel,
    start_pair,
)

logger = log.get_logger()


def _check_infected(api: str) -> None:
    if (
        not _state._runtime_vars['_is_infected_aio']
        or asyncio._get_running_loop() is None
    ):
        raise RuntimeError(
            f'`tractor.to_asyncio.{api}()` needs `infect_asyncio: bool` mode, '
            'which is not enabled here: spawn this actor with '
            '`infect_asyncio=True` (or run the root with '
            '`tractor.to_asyncio.run_as_asyncio_guest()`)'
        )


def _trio_cancelled(err: BaseException) -> TrioCancelled:
    told = TrioCancelled(f'the trio side ended with {type(err).__name__}: {err}')
    told.__cause__ = err
    return told


async def run_task(
    func: Callable,
    *,
    qsize: int = 2**10,
    **kwargs: Any,
) -> Any:
    '''
    Run `func(**kwargs)`, an asyncio `async def` function, as an
    `asyncio.Task` and return its result to the calling trio task, or
    raise its error (`AsyncioCancelled` if it was cancelled). A
    `chan: LinkedTaskChannel` (or legacy `to_trio`/`from_trio`)
    parameter of `func` is injected. If the trio caller is cancelled or
    errors, `TrioCancelled` is raised in the asyncio task and the caller
    waits (bounded) for it to end.
    '''
    _check_infected('run_task')
    chan = start_pair(func, kwargs, qsize=qsize)
    try:
        await chan._aio_done.wait()
    except BaseException as err:
        await chan._end_aio_side(_trio_cancelled(err))
        _log_aio_error_lost(chan, err)
        raise
    return await chan.wait_for_result()


@asynccontextmanager
async def open_channel_from(
    target: Callable,
    suppress_graceful_exits: bool = True,
    **target_kwargs: Any,
) -> AsyncIterator[tuple[LinkedTaskChannel, Any]]:
    '''
    Start `target(**target_kwargs)`, an asyncio `async def` function
    declaring a `chan` parameter (or legacy `to_trio`/`from_trio`), as an
    asyncio task linked to the calling trio task; yields `(chan, first)`
    once it called `chan.started_nowait(first)` (legacy: its first
    `to_trio.send_nowait()`).

    An error in the asyncio task ends the block with that error; its
    return ends the channel (`trio.EndOfChannel`, or `AsyncioTaskExited`
    with `suppress_graceful_exits=False`). Leaving the block raises
    `TrioTaskExited` in a still running asyncio task, an error or
    cancellation of the block `TrioCancelled`; either way the block only
    exits once the asyncio task has ended (bounded).
    '''
    _check_infected('open_channel_from')
    chan = start_pair(
        target, target_kwargs,
        qsize=2**10,
        suppress_graceful_exits=suppress_graceful_exits,
        for_channel=True,
    )
    try:
        with trio.CancelScope() as body_scope:
            first = await chan._wait_started()
            chan._supervise_body(body_scope)
            yield chan, first
    except BaseException as err:
        if err is not chan._aio_err:
            await chan._end_aio_side(_trio_cancelled(err))
            _log_aio_error_lost(chan, err)
        raise
    if chan._scope_cancelled_for_aio_err and body_scope.cancelled_caught:
        # the body was interrupted because the asyncio task failed
        chan._raise_aio_error()
    await chan._end_aio_side(TrioTaskExited(
        'the trio side left its `open_channel_from()` block'
    ))
    if not chan._aio_err_raised:
        # a failure the body did not see, or one while handling the exit
        chan._raise_aio_error()


def _log_aio_error_lost(chan: LinkedTaskChannel, trio_err: BaseException) -> None:
    '''The trio side's own error wins; say what the asyncio side raised too.'''
    aio_err = chan._aio_err
    if aio_err is not None and aio_err is not trio_err and not chan._aio_err_raised:
        logger.warning(
            f'asyncio task {chan._aio_name()} failed with {aio_err!r} while '
            f'its trio side was ending with {trio_err!r}'
        )
