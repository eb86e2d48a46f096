'''
Shipping payload type-specs by name: one actor sends the names of the
types in a spec (`enc_type_union()`), its peer rebuilds the spec from
them (`dec_type_union()`), e.g. to `limit_plds()` to what the other side
will send.

A builtin or `typing` name travels bare (`'int'`, `'NoneType'`); any
other type as `'module:qualname'`, which the receiver imports.
'''
from __future__ import annotations

import builtins
import types
import typing
from types import ModuleType
from typing import (
    Any,
    Union,
)

from .ptr import NamespacePath

_NONE_NAME: str = 'NoneType'


def enc_type_union(spec: Any) -> list[str]:
    '''The names of the member types of `spec` (a type or a union).'''
    is_union = typing.get_origin(spec) in (Union, types.UnionType)
    members = typing.get_args(spec) if is_union else (spec,)
    names: list[str] = []
    for typ in members:
        if typ is None or typ is type(None):
            names.append(_NONE_NAME)
        elif getattr(builtins, getattr(typ, '__name__', ''), None) is typ:
            names.append(typ.__name__)
        elif getattr(typing, getattr(typ, '_name', None) or '', None) is typ:
            names.append(typ._name)
        elif isinstance(typ, type):
            names.append(f'{typ.__module__}:{typ.__qualname__}')
        else:
            raise TypeError(f'Can not ship {typ!r} by name: not a plain type')
    return names


def _resolve(name: str, mods: list[ModuleType]) -> Any:
    if name == _NONE_NAME:
        return type(None)
    if ':' in name:
        return NamespacePath(name).load_ref()
    for mod in (builtins, typing, *mods):
        if (found := getattr(mod, name, None)) is not None:
            return found
    raise NameError(
        f'No type named {name!r} in builtins, typing or '
        f'{[mod.__name__ for mod in mods]!r}'
    )


def dec_type_union(
    type_names: list[str],
    mods: list[ModuleType] = [],
) -> Any:
    '''
    The type (one name) or union of types named in `type_names`; bare
    names are looked up in builtins, `typing`, then `mods`.
    '''
    if not type_names:
        raise ValueError('`dec_type_union()` needs at least one type name')
    resolved = tuple(_resolve(name, mods) for name in type_names)
    if len(resolved) == 1:
        return resolved[0]
    return Union[resolved]
