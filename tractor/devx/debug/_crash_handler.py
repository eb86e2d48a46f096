'''
Crash handlers for sync code (CLIs, code before or around a runtime): a
post-mortem REPL on whatever escapes the block.
'''
from __future__ import annotations

from contextlib import contextmanager
from typing import (
    Any,
    Callable,
    Iterator,
    Sequence,
)

import trio

from tractor.runtime import _state
from tractor.trionics._taskc import BoxedMaybeException

from . import _sync


def _matches(err: BaseException, types: Any) -> bool:
    return isinstance(err, tuple(types))


@contextmanager
def open_crash_handler(
    catch: set[type[BaseException]]|frozenset = frozenset({BaseException}),
    ignore: set[type[BaseException]]|frozenset = frozenset({KeyboardInterrupt, trio.Cancelled}),
    hide_tb: bool = True,
    repl_fixture: Callable[[], Any]|None = None,
    raise_on_exit: bool|Sequence[type[BaseException]] = True,
) -> Iterator[BoxedMaybeException]:
    '''
    Open a post-mortem `(Pdb+)` REPL on any `catch` error (not `ignore`
    ones) escaping the block, then re-raise it (`raise_on_exit`: always,
    never, or for these types only). Under a debug-mode runtime the REPL
    takes the tree-wide tty lock. `repl_fixture` is a context manager
    factory entered around the REPL. Yields a `BoxedMaybeException`
    holding the error.
    '''
    __tracebackhide__: bool = hide_tb
    box = BoxedMaybeException(raise_on_exit=raise_on_exit)
    try:
        yield box
    except BaseException as err:
        if not _matches(err, catch) or _matches(err, ignore):
            raise
        box.value = err
        _sync.sync_post_mortem(err, repl_fixture=repl_fixture)
        reraise = box.raise_on_exit
        if reraise is True or (
            reraise and not isinstance(reraise, bool) and _matches(err, reraise)
        ):
            raise


@contextmanager
def maybe_open_crash_handler(
    pdb: bool|None = None,
    hide_tb: bool = True,
    **kwargs: Any,
) -> Iterator[BoxedMaybeException]:
    '''
    `open_crash_handler()` when `pdb` (default: whether this actor is in
    debug mode), else a block that only boxes nothing.
    '''
    __tracebackhide__: bool = hide_tb
    if pdb is None:
        pdb = _state.debug_mode()
    if not pdb:
        yield BoxedMaybeException()
        return
    with open_crash_handler(hide_tb=hide_tb, **kwargs) as box:
        yield box
