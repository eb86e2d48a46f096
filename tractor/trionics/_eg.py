'''
Exception-group helpers.
'''
from __future__ import annotations

import trio


def collapse_eg(exc: BaseException) -> BaseException:
    '''
    The single leaf of a group that (recursively) holds exactly one
    exception, else `exc` unchanged.
    '''
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def get_collapsed_eg(beg: BaseExceptionGroup) -> BaseException|None:
    leaf = collapse_eg(beg)
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
