'''
Typed payloads with `@tractor.context(pld_spec=...)`.

Every `Started`, `Yield` and `Return` payload of this dialog must be a
`Point` (or `None`). The child first tries to `started()` something
else, which fails *locally* with `MsgTypeError` before anything is sent;
then real `Point` structs stream both ways and arrive as `Point`s.

'''
import msgspec
import trio
import tractor
from tractor import MsgTypeError


class Point(msgspec.Struct):
    x: float
    y: float


@tractor.context(pld_spec=Point|None)
async def mirror(ctx: tractor.Context) -> Point|None:
    try:
        # not a `Point`: rejected before it is sent
        await ctx.started({'x': 'one', 'y': 'two'})
    except MsgTypeError:
        print('child: bad `started()` value rejected locally')

    await ctx.started(Point(0, 0))

    last = None
    async with ctx.open_stream() as stream:
        async for pt in stream:
            # decoded as a `Point`, not a dict
            assert isinstance(pt, Point)
            last = Point(-pt.x, -pt.y)
            await stream.send(last)
    return last


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'mirror',
            enable_modules=[__name__],
        )
        async with portal.open_context(mirror) as (ctx, origin):
            assert origin == Point(0, 0)
            async with ctx.open_stream() as stream:
                for i in range(1, 4):
                    await stream.send(Point(i, 2 * i))
                    reflected = await stream.receive()
                    assert isinstance(reflected, Point)
                    print(f'sent {Point(i, 2 * i)} got {reflected}')

            last = await ctx.wait_for_result()

        assert last == Point(-3, -6)
        print(f'typed dialog done, last point: {last}')
        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
