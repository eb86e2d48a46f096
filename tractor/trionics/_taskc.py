'''
Task-cancellation helpers: bring back an error that a `trio.Cancelled`
hid, and a `nursery.start()` that reports cancellation as cancellation.
'''
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Sequence,
)

import trio

from tractor import log

logger = log.get_logger()


class BoxedMaybeException:
    '''
    A mutable holder for an exception that a `with`-block may or may
    not have raised; yielded by crash handlers,
    `maybe_raise_from_masking_exc()` and `tractor._testing.expect_ctxc()`.

    `.value`: the captured exception, `None` until one was.
    `.raise_on_exit`: whether (`True`) or for which exception types
    (a sequence) the capturing block should re-raise on exit.

    '''
    __slots__ = ('value', 'raise_on_exit')

    def __init__(
        self,
        value: BaseException | None = None,
        raise_on_exit: bool | Sequence[type[BaseException]] = False,
    ) -> None:
        self.value = value
        self.raise_on_exit = raise_on_exit

    def pformat(self) -> str:
        if self.value is None:
            return f'<{type(self).__name__} (no exception)>'
        return f'<{type(self).__name__} {self.value!r}>'

    __repr__ = pformat


def _find_masked(
    exc: BaseException,
    unmask_from: tuple[type[BaseException], ...],
) -> tuple[BaseException, BaseException]|None:
    '''
    The first `(masker, masked)` pair in `exc` (a group is searched
    leaf by leaf): a `masker` of an `unmask_from` type raised while a
    real error, its `__context__`, was still in flight.
    '''
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            if found := _find_masked(sub, unmask_from):
                return found
        return None
    ctx = exc.__context__
    if (
        isinstance(exc, unmask_from)
        and ctx is not None
        and not isinstance(ctx, unmask_from)
        and not isinstance(ctx, BaseExceptionGroup)
    ):
        return exc, ctx
    return None


@asynccontextmanager
async def maybe_raise_from_masking_exc(
    unmask_from: tuple[type[BaseException], ...] = (trio.Cancelled,),
    raise_unmasked: bool = True,
    extra_note: str = (
        'This error was hidden by the {masker_type} raised while it was '
        'still being handled (often an `await` in a `finally:` or '
        '`__aexit__()` of a cancelled scope).'
    ),
    always_warn_on: tuple[type[BaseException], ...] = (),
    never_warn_on: tuple[type[BaseException], ...] = (),
) -> AsyncIterator[BoxedMaybeException]:
    '''
    Watch the block for an error hidden by a cancellation: when a
    `trio.Cancelled` (or another `unmask_from` type, alone or in a
    group) escapes whose `__context__` is a real error it replaced,
    raise that error instead (`from` the masker), noted with
    `extra_note`. The yielded box holds the unmasked error.

    With `raise_unmasked=False` the masker propagates as is and the
    unmasking is only logged. A warning is logged for masked errors of
    `always_warn_on` types, or whenever they are not raised, unless
    their type is in `never_warn_on`.
    '''
    if not isinstance(unmask_from, tuple):
        raise ValueError(
            f'`unmask_from` must be a tuple of exception types, '
            f'got {unmask_from!r}'
        )
    box = BoxedMaybeException()
    try:
        yield box
    except BaseException as exc:
        found = _find_masked(exc, unmask_from)
        if found is None:
            raise
        masker, masked = found
        box.value = masked
        warn = (
            isinstance(masked, always_warn_on) or not raise_unmasked
        ) and not isinstance(masked, never_warn_on)
        if warn:
            logger.warning(
                f'{type(masker).__name__} masked an error:\n{masked!r}'
            )
        if not raise_unmasked:
            raise
        if extra_note:
            masked.add_note(
                extra_note.format(masker_type=f'`{type(masker).__name__}`')
            )
        raise masked from exc


async def start_or_cancel(
    nursery: trio.Nursery,
    async_fn: Callable[..., Awaitable[Any]],
    *args: Any,
    name: object = None,
) -> Any:
    '''
    `nursery.start(async_fn, *args, name=name)`, except that when the
    task ends without calling `task_status.started()` because the
    caller's scope was cancelled, the caller gets that `trio.Cancelled`
    instead of trio's `RuntimeError` about the missing `started()`.
    '''
    try:
        return await nursery.start(async_fn, *args, name=name)
    except RuntimeError as err:
        if 'started' not in str(err):
            raise
        # raises the ambient cancellation when there is one
        await trio.lowlevel.checkpoint_if_cancelled()
        raise
