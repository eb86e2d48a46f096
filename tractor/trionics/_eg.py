'''
Exception-group helpers.
'''
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

import trio


def collapse_exc(exc: BaseException) -> BaseException:
    '''
    The single leaf of a group that (recursively) holds exactly one
    exception, else `exc` unchanged.
    '''
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def get_collapsed_eg(beg: BaseExceptionGroup) -> BaseException|None:
    leaf = collapse_exc(beg)
    return None if leaf is beg else leaf


def is_multi_cancelled(
    beg: BaseException,
    ignore_nested: set[type[BaseException]] = frozenset(),
) -> BaseExceptionGroup|bool:
    '''The `trio.Cancelled` subgroup if `beg` is a group of only those.'''
    if not isinstance(beg, BaseExceptionGroup):
        return False
    matched, rest = beg.split((trio.Cancelled, *ignore_nested))
    if matched is not None and rest is None:
        return matched
    return False


@asynccontextmanager
async def collapse_eg(
    hide_tb: bool = True,
    ignore: set[type[BaseException]] = frozenset(),
    add_notes: bool = False,
) -> AsyncIterator[None]:
    '''
    Raise the lone leaf of an exception group escaping the block instead of
    the group (trio's strict nurseries wrap even a single error).
    '''
    try:
        yield
    except BaseExceptionGroup as beg:
        leaf = collapse_exc(beg)
        if leaf is beg or type(leaf) in ignore:
            raise
        if add_notes:
            leaf.add_note('( ^^^ this exc was collapsed from a group ^^^ )')
        raise leaf from leaf.__cause__
