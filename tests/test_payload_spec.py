'''
Payload typing per dialog (`@tractor.context(pld_spec=...)`): a bad
`started()` value fails locally in the child (before anything is
sent), bad `Return` / `Yield` payloads fail with `MsgTypeError` where
they are decoded on the parent side, and typed structs round-trip.

'''
import msgspec
import pytest
import trio
import tractor
from tractor._exceptions import MsgTypeError
from tractor.msg.types import (
    Return,
    Started,
    Yield,
)
from tractor._testing import nursery_kwargs


_state: dict = {}


async def get_state() -> dict:
    return dict(_state)


class Point(msgspec.Struct):
    x: int
    y: int


# ---- child-side endpoints ----

@tractor.context(pld_spec=int)
async def bad_started_caught(ctx: tractor.Context) -> int:
    '''`started()` with a `str` under an `int` spec: caught locally.'''
    try:
        await ctx.started('not an int')
    except MsgTypeError as mte:
        _state['mte_type'] = type(mte).__name__
        _state['mte_repr'] = repr(mte)
    else:
        _state['mte_type'] = None
    # nothing was sent: a valid `started()` still works
    await ctx.started(1)
    return 2


@tractor.context(pld_spec=int)
async def bad_started_raised(ctx: tractor.Context) -> None:
    await ctx.started('not an int')


@tractor.context(pld_spec=int)
async def bad_started_unvalidated(ctx: tractor.Context) -> None:
    await ctx.started('not an int', validate_pld_spec=False)
    await trio.sleep_forever()


@tractor.context(pld_spec=int)
async def bad_return(ctx: tractor.Context) -> int:
    await ctx.started(1)
    return 'not an int'


@tractor.context(pld_spec=int)
async def bad_yield(ctx: tractor.Context) -> None:
    await ctx.started(0)
    async with ctx.open_stream() as stream:
        await stream.send(1)
        await stream.send(2)
        await stream.send('three')
        await trio.sleep_forever()


@tractor.context(pld_spec=Point|None)
async def point_doubler(ctx: tractor.Context, start: Point) -> Point:
    '''Typed structs both ways: double every `Point` the parent sends.'''
    assert isinstance(start, dict) or isinstance(start, Point)
    await ctx.started(Point(x=0, y=0))
    last = None
    async with ctx.open_stream() as stream:
        async for pt in stream:
            assert isinstance(pt, Point)
            last = Point(x=pt.x * 2, y=pt.y * 2)
            await stream.send(last)
    return last


# ---- tests ----

def test_bad_started_raises_locally_in_child(reg_addr, start_method):
    '''
    The child's `started()` validates against the spec before sending:
    `MsgTypeError` raised in the child, nothing reaches the parent,
    and a later valid `started()` goes through.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'typed',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    bad_started_caught,
                ) as (ctx, first):
                    assert first == 1
                    assert await ctx.wait_for_result() == 2

                state = await portal.run(get_state)
                assert state['mte_type'] == 'MsgTypeError'
                text = state['mte_repr']
                assert 'Trying to send ' in text
                assert 'invalid `Started` msg payload' in text
                assert 'not an int' in text
                assert "has type <class 'str'>" in text
                assert 'not match type-spec' in text
                await portal.cancel_actor()

    trio.run(main)


def test_bad_started_propagates_as_mte(reg_addr, start_method):
    '''
    A child that lets its `started()` validation failure propagate
    fails the parent's `open_context()` with a `MsgTypeError`.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'typed',
                    enable_modules=[__name__],
                )
                with pytest.raises(MsgTypeError) as excinfo:
                    async with portal.open_context(bad_started_raised):
                        pytest.fail('the block must not be entered')

                mte = excinfo.value
                assert mte.boxed_type is MsgTypeError
                assert mte.src_uid == portal.chan.aid.uid
                assert 'invalid `Started` msg payload' in mte.tb_str
                await portal.cancel_actor()

    trio.run(main)


def test_unvalidated_bad_started_fails_at_parent(reg_addr, start_method):
    '''
    With `validate_pld_spec=False` the bad `Started` is sent and the
    parent's `open_context()` entry raises `MsgTypeError` decoding it.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'typed',
                    enable_modules=[__name__],
                )
                with pytest.raises(MsgTypeError) as excinfo:
                    async with portal.open_context(bad_started_unvalidated):
                        pytest.fail('the block must not be entered')

                mte = excinfo.value
                assert mte.expected_msg_type is Started
                assert 'invalid `Started` msg payload' in repr(mte)
                await portal.cancel_actor()

    trio.run(main)


def test_bad_return_raises_mte_at_parent(reg_addr, start_method):
    '''
    A `Return` payload outside the spec raises `MsgTypeError` (a local
    error, not a boxed remote one) from the parent's
    `wait_for_result()`, recorded as the ctx's remote error and
    outcome; it is raised again at block exit.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'typed',
                    enable_modules=[__name__],
                )
                with pytest.raises(MsgTypeError) as outer:
                    async with portal.open_context(bad_return) as (ctx, first):
                        assert first == 1
                        with pytest.raises(MsgTypeError) as excinfo:
                            await ctx.wait_for_result()

                        mte = excinfo.value
                        assert mte.expected_msg_type is Return
                        assert mte.cid == ctx.cid
                        assert (
                            mte
                            is ctx._remote_error
                            is ctx.maybe_error
                            is ctx.outcome
                        )
                        assert ctx._local_error is None
                        text = repr(mte)
                        assert 'invalid `Return` msg payload' in text
                        assert 'not an int' in text
                        assert "has type <class 'str'>" in text
                        assert 'not match type-spec' in text

                assert outer.value is mte
                await portal.cancel_actor()

    trio.run(main)


def test_bad_yield_raises_mte_at_parent(reg_addr, start_method):
    '''
    A `Yield` payload outside the spec raises `MsgTypeError` from the
    parent's `receive()`, after the valid items before it.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'typed',
                    enable_modules=[__name__],
                )
                got: list[int] = []
                with pytest.raises(MsgTypeError) as excinfo:
                    async with (
                        portal.open_context(bad_yield) as (ctx, _),
                        ctx.open_stream() as stream,
                    ):
                        async for i in stream:
                            got.append(i)

                assert got == [1, 2]
                mte = excinfo.value
                assert mte.expected_msg_type is Yield
                assert mte.cid == ctx.cid
                assert 'invalid `Yield` msg payload' in repr(mte)
                # the parent's failure cancelled the child's task
                assert ctx.cancel_called
                await portal.cancel_actor()

    trio.run(main)


def test_typed_struct_payloads(reg_addr, start_method):
    '''`msgspec.Struct` payloads decode as structs on both sides.'''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'typed',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    point_doubler,
                    start=Point(x=1, y=1),
                ) as (ctx, first):
                    assert first == Point(x=0, y=0)
                    async with ctx.open_stream() as stream:
                        for i in range(5):
                            await stream.send(Point(x=i, y=-i))
                            back = await stream.receive()
                            assert isinstance(back, Point)
                            assert back == Point(x=2 * i, y=-2 * i)

                    assert await ctx.wait_for_result() == Point(x=8, y=-8)

                await portal.cancel_actor()

    trio.run(main)
