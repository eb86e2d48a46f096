'''
`tractor.msg` extras: `pretty_struct.Struct`, payload type-specs shipped
by name (`msg._exts`), and custom types over IPC end to end: the sender
`apply_codec()`s a codec with an `enc_hook`, the receiver
`limit_plds()`s its dialog to the type with a `dec_hook`.
'''
from __future__ import annotations

from typing import Union

import msgspec
import pytest
import trio

import tractor
from tractor._testing import nursery_kwargs
from tractor.msg import (
    NamespacePath,
    apply_codec,
    current_codec,
    mk_codec,
    mk_dec,
)
from tractor.msg._exts import (
    dec_type_union,
    enc_type_union,
)
from tractor.msg._ops import limit_plds
from tractor.msg.pretty_struct import (
    DiffDump,
    Struct,
    iter_struct_ppfmt_lines,
    pformat,
)


# ---- pretty_struct ----

class Inner(Struct):
    name: str
    tags: list[str] = []


class Outer(Struct):
    count: int
    inner: Inner
    ratio: float = 0.5
    _secret: str = 'hidden'


def test_pretty_struct_repr_and_dicts():
    obj = Outer(count=3, inner=Inner(name='in', tags=['a']))
    assert repr(obj) == (
        'Outer(\n'
        '  count: int = 3,\n'
        '  inner: Inner = Inner(\n'
        "    name: str = 'in',\n"
        "    tags: list[str] = ['a'],\n"
        '  ),\n'
        '  ratio: float = 0.5,\n'
        ')'
    )
    assert 'hidden' not in obj.pformat()
    assert pformat(obj, indent=4).startswith('    Outer(\n      count')
    assert [name for name, _ in iter_struct_ppfmt_lines(obj)] == ['count', 'inner', 'ratio']
    assert obj.to_dict() == {
        'count': 3, 'inner': obj.inner, 'ratio': 0.5, '_secret': 'hidden',
    }
    assert '_secret' not in obj.to_dict(include_non_members=False)


def test_pretty_struct_copy_typecast_and_diffs():
    obj = Outer(count=3, inner=Inner(name='in'))
    twin = obj.copy()
    assert twin == obj and twin is not obj and twin.inner is not obj.inner
    changed = obj.copy(update={'count': 4})
    assert changed.count == 4 and obj.count == 3
    # the copy is validated against the field types
    with pytest.raises(msgspec.ValidationError):
        obj.copy(update={'count': 'four'})

    diff = changed - obj
    assert isinstance(diff, DiffDump)
    assert diff == [('count', 4, 3)]
    assert 'count: 4 | 3' in repr(diff)
    assert (obj - obj.copy()) == []

    assert Outer.fields_diff({'count': 1, 'ratio': 0.5, 'extra': True}) == [
        ('count', msgspec.UNSET, 1),
        ('extra', msgspec.UNSET, True),
    ]
    assert Outer.fields_diff(changed.copy(update={'ratio': 1.0})) == [
        ('count', msgspec.UNSET, 4),
        ('inner', msgspec.UNSET, changed.inner),
        ('ratio', 0.5, 1.0),
    ]

    class Loose(Struct):
        items: tuple[int, ...]
        value: float

    loose = Loose(items=[1, 2], value=1)
    loose.typecast()
    assert loose.items == (1, 2) and isinstance(loose.value, float)


# ---- type-specs by name ----

class Vec:
    '''A custom (non-msgspec) type: travels as `[x, y]`.'''

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other) -> bool:
        return isinstance(other, Vec) and (self.x, self.y) == (other.x, other.y)

    def __repr__(self) -> str:
        return f'Vec({self.x}, {self.y})'


def enc_vec(obj):
    if isinstance(obj, Vec):
        return [obj.x, obj.y]
    raise NotImplementedError(f'cannot encode {obj!r}')


def dec_vec(typ, obj):
    if typ is Vec:
        return Vec(*obj)
    raise NotImplementedError(f'cannot decode {typ!r}')


def test_type_union_by_name():
    names = enc_type_union(Union[int, str, None, Vec, NamespacePath])
    assert names == [
        'int', 'str', 'NoneType', f'{__name__}:Vec',
        'tractor.msg.ptr:NamespacePath',
    ]
    assert enc_type_union(float) == ['float']
    assert dec_type_union(['float']) is float
    assert dec_type_union(names[:3]) == Union[int, str, None]
    assert dec_type_union(['Any']) is __import__('typing').Any
    with pytest.raises(NameError):
        dec_type_union(['NoSuchType'])
    with pytest.raises(ValueError):
        dec_type_union([])


def test_codec_hook_checks():
    with pytest.raises(TypeError):
        mk_codec(enc_hook=enc_vec)
    with pytest.raises(TypeError):
        mk_dec(Vec, dec_hook=dec_vec)
    # without hooks a custom type can not be encoded at all
    with pytest.raises(TypeError):
        mk_codec().encode(Vec(1, 2))
    codec = mk_codec(enc_hook=enc_vec, ext_types=[Vec])
    dec = mk_dec(Vec, dec_hook=dec_vec, ext_types=[Vec])
    assert dec.decode(codec.encode(Vec(1, 2))) == Vec(1, 2)
    with apply_codec(codec):
        assert current_codec() is codec
    assert current_codec() is not codec


# ---- custom types over IPC, on every backend ----

vec_codec = mk_codec(enc_hook=enc_vec, ext_types=[Vec])


@tractor.context
async def double_vecs(ctx: tractor.Context, spec_names: list[str]) -> int:
    spec = dec_type_union(spec_names)
    doubled = 0
    with (
        apply_codec(vec_codec),
        limit_plds(spec, dec_hook=dec_vec, ext_types=[Vec]),
    ):
        await ctx.started(Vec(0, 0))
        async with ctx.open_stream() as stream:
            async for vec in stream:
                assert isinstance(vec, Vec), vec
                await stream.send(Vec(vec.x * 2, vec.y * 2))
                doubled += 1
    return doubled


def test_custom_type_end_to_end(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(**nursery_kwargs(reg_addr, start_method)) as an:
                portal = await an.start_actor('doubler', enable_modules=[__name__])
                with apply_codec(vec_codec):
                    async with portal.open_context(
                        double_vecs, spec_names=enc_type_union(Vec),
                    ) as (ctx, first):
                        # decoded before our own limit applies: plain builtins
                        assert first == [0, 0]
                        with limit_plds(Vec, dec_hook=dec_vec, ext_types=[Vec]):
                            async with ctx.open_stream() as stream:
                                for i in range(1, 4):
                                    await stream.send(Vec(i, -i))
                                    assert await stream.receive() == Vec(2 * i, -2 * i)
                        assert await ctx.wait_for_result() == 3
                await portal.cancel_actor()

    trio.run(main)
