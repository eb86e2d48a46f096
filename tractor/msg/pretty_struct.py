'''
A `msgspec.Struct` that reads well: a multi-line `repr()` (nested
structs indented, private `_fields` hidden), plus conversions (`to_dict`,
a validated `copy`, `typecast`) and field-by-field diffs (`a - b`).
'''
from __future__ import annotations

from typing import (
    Any,
    Iterator,
)

import msgspec
from msgspec import structs


def iter_fields(struct: msgspec.Struct) -> Iterator[tuple[structs.FieldInfo, Any]]:
    '''Each field's `FieldInfo` with its value, in declaration order.'''
    for field in structs.fields(struct):
        yield field, getattr(struct, field.name)


def _type_name(typ: Any) -> str:
    if isinstance(typ, type):
        return typ.__name__
    return repr(typ).replace('typing.', '')


def iter_struct_ppfmt_lines(
    struct: msgspec.Struct,
    field_indent: int = 2,
) -> Iterator[tuple[str, str]]:
    '''
    `(field_name, line)` pairs of the public fields' `name: type = value`
    lines, nested structs already rendered (and indented) as blocks.
    '''
    pad = ' ' * field_indent
    for field, value in iter_fields(struct):
        if field.name.startswith('_'):
            continue
        if isinstance(value, msgspec.Struct):
            rendered = pformat(value, field_indent=field_indent)
            # the nested block's inner lines move in by one level
            rendered = rendered.replace('\n', '\n' + pad)
        else:
            rendered = repr(value)
        yield field.name, f'{pad}{field.name}: {_type_name(field.type)} = {rendered},'


def pformat(
    struct: msgspec.Struct,
    field_indent: int = 2,
    indent: int = 0,
) -> str:
    '''`struct` as a multi-line, one-field-per-line text block.'''
    lines = [line for _, line in iter_struct_ppfmt_lines(struct, field_indent)]
    head = f'{type(struct).__name__}('
    if not lines:
        text = head + ')'
    else:
        text = '\n'.join([head, *lines, ')'])
    if indent:
        text = '\n'.join(' ' * indent + line for line in text.splitlines())
    return text


class DiffDump(list):
    '''A list of `(field_name, ours, theirs)` differences that prints as a table.'''

    def __repr__(self) -> str:
        if not self:
            return 'DiffDump([])'
        rows = '\n'.join(
            f'  {name}: {ours!r} | {theirs!r}' for name, ours, theirs in self
        )
        return f'DiffDump(\n{rows}\n)'


_MISSING: Any = msgspec.UNSET


class Struct(msgspec.Struct):
    '''
    A `msgspec.Struct` with a readable multi-line `repr()`, dict and
    copy helpers, and diffs: `a - b` lists the fields whose values
    differ as `(name, a_value, b_value)`.
    '''

    def pformat(self, field_indent: int = 2, indent: int = 0) -> str:
        return pformat(self, field_indent=field_indent, indent=indent)

    def __repr__(self) -> str:
        return self.pformat()

    def to_dict(self, include_non_members: bool = True) -> dict[str, Any]:
        '''
        The fields as a dict (nested values left as they are); without
        `include_non_members`, the private `_fields` are left out.
        '''
        return {
            field.name: value for field, value in iter_fields(self)
            if include_non_members or not field.name.startswith('_')
        }

    def copy(self, update: dict[str, Any]|None = None) -> Struct:
        '''
        A deep copy with `update` applied, validated against the field
        types by a round trip through msgpack (a `msgspec.ValidationError`
        for a value that does not fit).
        '''
        updated = structs.replace(self, **(update or {}))
        return msgspec.msgpack.decode(
            msgspec.msgpack.encode(updated), type=type(self),
        )

    def typecast(self) -> None:
        '''Convert each field, in place, to its annotated type.'''
        for field, value in iter_fields(self):
            setattr(
                self,
                field.name,
                msgspec.convert(value, field.type, strict=False),
            )

    def __sub__(self, other: Struct) -> DiffDump:
        diffs = DiffDump()
        for field, value in iter_fields(self):
            theirs = getattr(other, field.name, _MISSING)
            if value != theirs:
                diffs.append((field.name, value, theirs))
        return diffs

    @classmethod
    def fields_diff(cls, other: dict[str, Any]|msgspec.Struct) -> DiffDump:
        '''
        How `other` (a dict of would-be fields, or a struct) differs from
        this type's defaults: `(name, default, value)` for each field it
        sets to something else, and `(name, UNSET, value)` for each entry
        that is no field of ours.
        '''
        values = other if isinstance(other, dict) else {
            field.name: value for field, value in iter_fields(other)
        }
        diffs = DiffDump()
        known = set()
        for field in structs.fields(cls):
            known.add(field.name)
            if field.default is not msgspec.NODEFAULT:
                default = field.default
            elif field.default_factory is not msgspec.NODEFAULT:
                default = field.default_factory()
            else:
                default = _MISSING
            if field.name in values and values[field.name] != default:
                diffs.append((field.name, default, values[field.name]))
        for name, value in values.items():
            if name not in known:
                diffs.append((name, _MISSING, value))
        return diffs
