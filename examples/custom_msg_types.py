'''
Your own types over IPC, and structs that print well.

`tractor.msg.pretty_struct.Struct` is a `msgspec.Struct` with a readable
multi-line `repr()` and field diffs (`a - b`). A type msgpack does not
know (here `Fraction`) travels through an encode hook on the sending
side (`mk_codec(enc_hook=..., ext_types=[...])` applied with
`apply_codec()`) and a decode hook on the receiving side
(`limit_plds(..., dec_hook=..., ext_types=[...])` inside the dialog).

'''
from fractions import Fraction

import trio
import tractor
from tractor.msg import apply_codec, mk_codec
from tractor.msg._ops import limit_plds
from tractor.msg.pretty_struct import Struct


class Order(Struct):
    item: str
    qty: int
    price: float


def enc_fraction(obj):
    if isinstance(obj, Fraction):
        return f'{obj.numerator}/{obj.denominator}'
    raise NotImplementedError


def dec_fraction(typ, obj):
    if typ is Fraction:
        return Fraction(obj)
    raise NotImplementedError


codec = mk_codec(enc_hook=enc_fraction, ext_types=[Fraction])


@tractor.context
async def halver(ctx: tractor.Context) -> None:
    await ctx.started()
    # (a limit applies to what `started()` sends too: set it afterwards)
    with (
        apply_codec(codec),
        limit_plds(Fraction, dec_hook=dec_fraction, ext_types=[Fraction]),
    ):
        async with ctx.open_stream() as stream:
            async for value in stream:
                await stream.send(value / 2)


async def main() -> None:
    order = Order(item='tea', qty=2, price=3.5)
    print(order)
    print('diff:', order.copy(update={'qty': 3}) - order)

    async with tractor.open_nursery() as an:
        portal = await an.start_actor('halver', enable_modules=[__name__])
        with apply_codec(codec):
            async with portal.open_context(halver) as (ctx, _):
                with limit_plds(Fraction, dec_hook=dec_fraction, ext_types=[Fraction]):
                    async with ctx.open_stream() as stream:
                        await stream.send(Fraction(1, 3))
                        half = await stream.receive()
        print(f'half of 1/3 is {half!r}')
        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
