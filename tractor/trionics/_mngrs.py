'''
Async context-manager helpers: enter several at once, share one per
key across the tasks of an actor, or use a nursery the caller may
already have.
'''
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncContextManager,
    AsyncIterator,
    Callable,
    Hashable,
    Sequence,
)

import trio

from tractor import log

from ._eg import collapse_eg

logger = log.get_logger()

# the nursery `maybe_open_context()` runs shared resources in by default:
# the current actor's service nursery, installed by the runtime layer
# (which sits above us and so can't be imported here)
_service_nursery_getter: Callable[[], trio.Nursery]|None = None


@asynccontextmanager
async def maybe_open_nursery(
    nursery: trio.Nursery|None = None,
    shield: bool = False,
    lib: Any = trio,
    **kwargs,
) -> AsyncIterator[trio.Nursery]:
    '''
    Yield `nursery` when one is given, else open a new one (from
    `lib`, with `kwargs`) whose cancel scope is shielded if `shield`.
    '''
    if nursery is not None:
        yield nursery
        return
    async with lib.open_nursery(**kwargs) as tn:
        tn.cancel_scope.shield = shield
        yield tn


@asynccontextmanager
async def gather_contexts(
    mngrs: Sequence[AsyncContextManager],
    tn: trio.Nursery|None = None,
) -> AsyncIterator[tuple[Any, ...]]:
    '''
    Enter every async context manager in `mngrs` concurrently (one task
    each) and yield their values, in input order, once all have
    entered; on exit, exit them all concurrently.

    The tasks run in `tn` when given (it must outlive this block), else
    in a nursery of our own.
    '''
    mngrs = list(mngrs)
    if not mngrs:
        raise ValueError(
            '`gather_contexts()` got no context managers; if you passed an '
            'inline generator expression, check that it yields any'
        )
    values: list[Any] = [None] * len(mngrs)
    entered = 0
    all_entered = trio.Event()
    release = trio.Event()

    async def hold(index: int, mngr: AsyncContextManager) -> None:
        nonlocal entered
        async with mngr as value:
            values[index] = value
            entered += 1
            if entered == len(mngrs):
                all_entered.set()
            await release.wait()

    async with collapse_eg(), maybe_open_nursery(tn) as nursery:
        for index, mngr in enumerate(mngrs):
            nursery.start_soon(hold, index, mngr)
        try:
            await all_entered.wait()
            yield tuple(values)
        finally:
            release.set()


class _Shared:
    '''One cached resource: its value, its users, and its holder task.'''

    def __init__(self) -> None:
        self.value: Any = None
        self.users: int = 0
        self.release = trio.Event()
        self.exited = trio.Event()
        self.exit_error: BaseException|None = None


# the per-actor cache (module state is per interpreter, so per actor)
_locks: dict[Hashable, trio.Lock] = {}
_cache: dict[Hashable, _Shared] = {}


def _encloses(tn: trio.Nursery, task: trio.lowlevel.Task) -> bool:
    '''Whether `tn` stays open for as long as `task` runs.'''
    if tn in task.child_nurseries:
        return True
    while (parent_tn := task.parent_nursery) is not None:
        if parent_tn is tn:
            return True
        task = parent_tn.parent_task
        # only the nurseries it opened before (outside) this one enclose it
        opened = task.child_nurseries
        if tn in opened[:opened.index(parent_tn)]:
            return True
    return False


async def _hold_resource(
    acm_func: Callable[..., AsyncContextManager],
    kwargs: dict[str, Any],
    cache_key: Hashable,
    shared: _Shared,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    started = False
    try:
        async with acm_func(**kwargs) as value:
            shared.value = value
            task_status.started(value)
            started = True
            await shared.release.wait()
    except Exception as err:
        if not started:
            raise
        # once started we run in the service nursery; an error here is
        # the last user's to see, not a reason to take the actor down
        shared.exit_error = err
    finally:
        shared.exited.set()
        # e.g. cancelled with the actor: nobody may pick up a dead entry
        if _cache.get(cache_key) is shared:
            del _cache[cache_key]


@asynccontextmanager
async def maybe_open_context(
    acm_func: Callable[..., AsyncContextManager],
    kwargs: dict[str, Any] = {},
    key: Hashable|Callable[..., Hashable]|None = None,
    tn: trio.Nursery|None = None,
) -> AsyncIterator[tuple[bool, Any]]:
    '''
    Share one instance of the async resource `acm_func(**kwargs)`
    between the tasks of this actor: yields `(cache_hit, value)`, where
    `cache_hit` is `False` for the task that entered it and `True` for
    every task using an already entered one.

    Entries are keyed by `acm_func` and `key(**kwargs)` when `key` is
    callable, else `key`, else the `kwargs` items (then hashable). The
    resource runs in `tn` (which must enclose the calling task), by
    default the actor's service nursery. The last user to leave exits
    it and waits for that; an error raised by its exit is re-raised to
    that user. An entry whose enter failed is not kept.
    '''
    # the callable itself, not its `id()`: bound methods are made anew on
    # each access but compare equal
    if callable(key):
        cache_key = (acm_func, key(**kwargs))
    else:
        cache_key = (acm_func, key or tuple(kwargs.items()))

    me = trio.lowlevel.current_task()
    if tn is None:
        if _service_nursery_getter is None:
            raise RuntimeError(
                '`maybe_open_context()` without `tn=` needs an actor runtime '
                '(its service nursery holds the shared resources)'
            )
        tn = _service_nursery_getter()
    elif not _encloses(tn, me):
        raise RuntimeError(
            f'`maybe_open_context(tn={tn!r})`: the nursery must enclose the '
            f'calling task {me.name!r}, or the resource could outlive it'
        )

    lock = _locks.setdefault(cache_key, trio.Lock())
    async with lock:
        shared = _cache.get(cache_key)
        cache_hit = shared is not None
        if shared is None:
            shared = _Shared()
            await tn.start(_hold_resource, acm_func, kwargs, cache_key, shared)
            _cache[cache_key] = shared
        shared.users += 1
    if cache_hit:
        logger.runtime(f'Re-using cached resource {cache_key!r}')

    try:
        yield cache_hit, shared.value
    finally:
        shared.users -= 1
        if shared.users == 0:
            with trio.CancelScope(shield=True):
                # hold the key until the old instance has fully exited, so
                # a newcomer gets a fresh one and never two at once
                async with lock:
                    if shared.users == 0 and not shared.release.is_set():
                        if _cache.get(cache_key) is shared:
                            del _cache[cache_key]
                        shared.release.set()
                        await shared.exited.wait()
                        if not lock.statistics().tasks_waiting:
                            _locks.pop(cache_key, None)
                        if shared.exit_error is not None:
                            raise shared.exit_error
