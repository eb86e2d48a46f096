'''
`@tractor.context` / `Portal.open_context()` semantics: the happy
path, `started()` misuse, errors on the child side before / after
`started()` and mid-stream, cancellation from either side (and from a
third actor) per the outcome matrix of the API spec (§5.5), a
grandchild's context cancelled through its parent, and overruns with
and without `allow_overruns`.

'''
import pytest
import trio
import tractor
from tractor._exceptions import (
    ContextCancelled,
    RemoteActorError,
    StreamOverrun,
)
from tractor._testing import nursery_kwargs


# per-process scratch state a child fills in and the root reads back
# with a separate `portal.run(get_state)` call
_state: dict = {}


async def get_state() -> dict:
    return dict(_state)


async def clear_state() -> None:
    _state.clear()


def own_uid() -> tuple[str, str]:
    return tractor.current_actor().aid.uid


# ---- child-side endpoints ----

@tractor.context
async def simple_ctx(
    ctx: tractor.Context,
    first: int,
    ret: str,
) -> str:
    # what the child sees of its own side of the dialog
    _state['side'] = ctx.side
    _state['portal_is_none'] = ctx.portal is None
    _state['peer_side'] = ctx.peer_side
    _state['current_ipc_ctx_is_ctx'] = tractor.current_ipc_ctx() is ctx
    _state['cid'] = ctx.cid
    await ctx.started(first)
    return ret


@tractor.context
async def started_twice(ctx: tractor.Context) -> None:
    await ctx.started(1)
    await ctx.started(2)


@tractor.context
async def stream_before_started(ctx: tractor.Context) -> None:
    async with ctx.open_stream():
        pass


@tractor.context
async def error_before_started(ctx: tractor.Context) -> None:
    raise NameError('boom before started')


@tractor.context
async def error_after_started(ctx: tractor.Context) -> None:
    await ctx.started('ok')
    await trio.sleep(0.1)
    raise ValueError('boom after started')


@tractor.context
async def error_mid_stream(ctx: tractor.Context, fail_at: int) -> None:
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(fail_at):
            await stream.send(i)
        # let the parent read everything before the failure lands
        await trio.sleep(0.2)
        raise KeyError('boom mid stream')


@tractor.context
async def sleep_forever_ctx(ctx: tractor.Context) -> None:
    _state['entered'] = _state.get('entered', 0) + 1
    await ctx.started()
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        _state['cancelled'] = _state.get('cancelled', 0) + 1
        raise


@tractor.context
async def stream_forever(ctx: tractor.Context) -> None:
    await ctx.started()
    try:
        async with ctx.open_stream() as stream:
            i = 0
            while True:
                await stream.send(i)
                i += 1
                await trio.sleep(0.01)
    except trio.Cancelled:
        _state['stream_cancelled'] = True
        raise


@tractor.context
async def self_cancelling_ctx(ctx: tractor.Context) -> None:
    await ctx.started()
    await ctx.cancel()
    # our own scope is cancelled: this checkpoint raises `trio.Cancelled`
    await trio.sleep_forever()


@tractor.context
async def report_pre_started(ctx: tractor.Context) -> None:
    # a parent-only API called on the child side
    try:
        await ctx.wait_for_result()
    except RuntimeError:
        _state['child_wait_for_result'] = 'RuntimeError'
    await ctx.started()


@tractor.context
async def mid_spawns_grandchild(ctx: tractor.Context) -> None:
    '''
    Run in the middle actor: spawn a grandchild, open a context into
    it and sit there until cancelled; record what the grandchild
    dialog looked like once that happened.

    '''
    an = None
    try:
        async with tractor.open_nursery() as an:
            portal = await an.start_actor(
                'grandchild',
                enable_modules=[__name__],
            )
            try:
                async with portal.open_context(
                    sleep_forever_ctx,
                ) as (gctx, _):
                    _state['gctx'] = gctx
                    await ctx.started(portal.chan.aid.uid)
                    await trio.sleep_forever()
            finally:
                gctx = _state.pop('gctx')
                _state['gctx_cancel_called'] = gctx.cancel_called
                _state['gctx_local_error'] = type(gctx._local_error).__name__
                _state['gctx_remote_error'] = type(gctx._remote_error).__name__
                _state['gctx_canceller'] = gctx.canceller
    finally:
        _state['grandchildren_left'] = len(an._children)


@tractor.context
async def flood_parent(ctx: tractor.Context, count: int) -> None:
    '''Stream `count` items at a parent that may not be reading.'''
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(count):
            await stream.send(i)
        # wait for the parent to end its side
        async for _ in stream:
            pass


@tractor.context
async def never_opens_stream(ctx: tractor.Context) -> None:
    await ctx.started()
    await trio.sleep_forever()


@tractor.context
async def slow_stream_reader(ctx: tractor.Context) -> list[int]:
    '''
    Open the stream allowing overruns, tell the parent, and only start
    reading after a while; return everything the parent sent.

    '''
    await ctx.started()
    got: list[int] = []
    async with ctx.open_stream(allow_overruns=True) as stream:
        await stream.send('ready')
        await trio.sleep(0.5)
        async for msg in stream:
            got.append(msg)
    return got


# ---- happy path and introspection ----

def test_simple_context(reg_addr, start_method):
    '''
    `open_context()` yields the `started()` value, the block exits
    cleanly with the child's return value available, and both sides'
    introspection attributes are right.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'simple',
                    enable_modules=[__name__],
                )
                assert tractor.current_ipc_ctx() is None

                async with portal.open_context(
                    simple_ctx,
                    first=42,
                    ret='done',
                ) as (ctx, first):
                    assert first == 42
                    assert isinstance(ctx, tractor.Context)
                    assert ctx.side == 'parent'
                    assert ctx.peer_side == 'child'
                    assert ctx.portal is portal
                    assert ctx.chan is portal.chan
                    assert tractor.current_ipc_ctx() is ctx
                    assert await ctx.wait_for_result() == 'done'
                    # cached
                    assert await ctx.wait_for_result() == 'done'

                assert tractor.current_ipc_ctx() is None
                assert ctx.outcome == 'done'
                assert ctx.has_outcome
                assert ctx.maybe_error is None
                assert ctx.canceller is None
                assert not ctx.cancel_called
                assert not ctx.cancelled_caught

                child = await portal.run(get_state)
                assert child['side'] == 'child'
                assert child['peer_side'] == 'parent'
                assert child['portal_is_none'] is True
                assert child['current_ipc_ctx_is_ctx'] is True
                assert child['cid'] == ctx.cid
                await portal.cancel_actor()

    trio.run(main)


def test_result_without_explicit_wait(reg_addr, start_method):
    '''A block that never waits still collects the result on exit.'''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'simple',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    simple_ctx,
                    first=1,
                    ret='later',
                ) as (ctx, first):
                    assert first == 1

                assert ctx.outcome == 'later'
                assert await ctx.wait_for_result() == 'later'
                await portal.cancel_actor()

    trio.run(main)


def test_side_only_apis(reg_addr, start_method):
    '''
    `started()` is child-only and `wait_for_result()` parent-only:
    calling them on the wrong side raises `RuntimeError`.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'sides',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    report_pre_started,
                ) as (ctx, _):
                    with pytest.raises(RuntimeError):
                        await ctx.started('nope')

                state = await portal.run(get_state)
                assert state['child_wait_for_result'] == 'RuntimeError'
                await portal.cancel_actor()

    trio.run(main)


# ---- `started()` / `open_stream()` misuse in the child ----

@pytest.mark.parametrize(
    'endpoint, fragment',
    [
        (started_twice, 'twice'),
        (stream_before_started, 'must be called before opening a stream'),
    ],
    ids=['started_twice', 'open_stream_before_started'],
)
def test_child_misuse_raises_runtime_error(
    reg_addr,
    start_method,
    endpoint,
    fragment,
):
    '''
    A second `started()` or an `open_stream()` before `started()` in
    the child raises `RuntimeError` there, which reaches the parent
    boxed.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'misuser',
                    enable_modules=[__name__],
                )
                with pytest.raises(RemoteActorError) as excinfo:
                    async with portal.open_context(endpoint) as (ctx, first):
                        await trio.sleep_forever()

                rae = excinfo.value
                assert rae.boxed_type is RuntimeError
                assert rae.src_uid == portal.chan.aid.uid
                assert fragment in rae.tb_str
                await portal.cancel_actor()

    trio.run(main)


# ---- errors on the child side ----

def test_child_error_before_started(reg_addr, start_method):
    '''An error before `started()` raises boxed from `open_context()`.'''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'early_failer',
                    enable_modules=[__name__],
                )
                entered: bool = False
                with pytest.raises(RemoteActorError) as excinfo:
                    async with portal.open_context(error_before_started):
                        entered = True

                assert not entered
                rae = excinfo.value
                assert rae.boxed_type is NameError
                assert rae.src_type is NameError
                assert rae.src_uid == portal.chan.aid.uid
                assert 'boom before started' in rae.tb_str

                # the actor survives its failed task
                assert (await portal.run(get_state)) == {}
                await portal.cancel_actor()

    trio.run(main)


def test_child_error_after_started(reg_addr, start_method):
    '''
    An error after `started()` wakes a parent blocked in an unrelated
    await and is raised at block exit; `ctx.canceller` is the child.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'late_failer',
                    enable_modules=[__name__],
                )
                with pytest.raises(RemoteActorError) as excinfo:
                    async with portal.open_context(
                        error_after_started,
                    ) as (ctx, first):
                        assert first == 'ok'
                        # woken by the remote error, not by this timeout
                        await trio.sleep(10)
                        pytest.fail('parent was not woken by the child error')

                rae = excinfo.value
                assert rae.boxed_type is ValueError
                assert rae.src_uid == portal.chan.aid.uid
                assert ctx._remote_error is rae
                assert ctx.maybe_error is rae
                assert ctx.canceller == portal.chan.aid.uid
                await portal.cancel_actor()

    trio.run(main)


def test_child_error_mid_stream(reg_addr, start_method):
    '''
    An error while streaming reaches the parent (from `receive()` or
    at block exit) after all the values sent before it.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'stream_failer',
                    enable_modules=[__name__],
                )
                got: list[int] = []
                with pytest.raises(RemoteActorError) as excinfo:
                    async with (
                        portal.open_context(
                            error_mid_stream,
                            fail_at=5,
                        ) as (ctx, _),
                        ctx.open_stream() as stream,
                    ):
                        async for i in stream:
                            got.append(i)
                        # the child's stream exit sends `Stop` just before
                        # its `Error`, so the loop may end first: the
                        # error then cancels this block and is raised at
                        # its exit
                        await trio.sleep(10)
                        pytest.fail('the child error never arrived')

                assert got == [0, 1, 2, 3, 4]
                rae = excinfo.value
                assert rae.boxed_type is KeyError
                assert rae.src_uid == portal.chan.aid.uid
                assert ctx.maybe_error is rae
                await portal.cancel_actor()

    trio.run(main)


# ---- the parent cancelling ----

def test_parent_ctx_cancel_is_absorbed(reg_addr, start_method):
    '''
    Outcome matrix row "P calls `ctx.cancel()` while C runs": nothing
    is raised, `wait_for_result()` *returns* the ctxc, which names the
    parent as canceller; the child saw `trio.Cancelled`.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'sleeper',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    sleep_forever_ctx,
                ) as (ctx, _):
                    await ctx.cancel()
                    assert ctx.cancel_called

                res = await ctx.wait_for_result()
                assert isinstance(res, ContextCancelled)
                assert res.canceller == own_uid()
                assert res.src_uid == portal.chan.aid.uid
                assert res.boxed_type is ContextCancelled
                assert ctx.cancel_acked
                assert ctx.canceller == own_uid()
                assert ctx.outcome is ctx.maybe_error is ctx._remote_error is res

                # the stream is not usable after our own cancel
                with pytest.raises(ContextCancelled):
                    async with ctx.open_stream():
                        pass

                state = await portal.run(get_state)
                assert state['cancelled'] == 1
                await portal.cancel_actor()

    trio.run(main)


def test_parent_ctx_cancel_mid_stream(reg_addr, start_method):
    '''
    `ctx.cancel()` while streaming: the child's stream task is
    cancelled, the acked self-cancel is absorbed by the block.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'streamer',
                    enable_modules=[__name__],
                )
                async with (
                    portal.open_context(stream_forever) as (ctx, _),
                    ctx.open_stream() as stream,
                ):
                    async for i in stream:
                        if i == 3:
                            await ctx.cancel()
                            break

                assert ctx.cancel_called
                assert ctx.cancel_acked
                assert ctx.canceller == own_uid()
                res = await ctx.wait_for_result()
                assert isinstance(res, ContextCancelled)
                assert res.canceller == own_uid()

                state = await portal.run(get_state)
                assert state['stream_cancelled'] is True
                await portal.cancel_actor()

    trio.run(main)


def test_outer_scope_cancels_mid_stream(reg_addr, start_method):
    '''
    Outcome matrix row "P's block is cancelled from outside":
    `trio.Cancelled` propagates (absorbed by the outer scope) and the
    child's task is cancelled.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'streamer',
                    enable_modules=[__name__],
                )
                got: list[int] = []
                with trio.CancelScope() as cs:
                    async with (
                        portal.open_context(stream_forever) as (ctx, _),
                        ctx.open_stream() as stream,
                    ):
                        async for i in stream:
                            got.append(i)
                            if i == 3:
                                cs.cancel()

                assert cs.cancelled_caught
                assert got == [0, 1, 2, 3]
                assert ctx.cancel_called
                assert isinstance(ctx._local_error, trio.Cancelled)

                state = await portal.run(get_state)
                assert state['stream_cancelled'] is True
                await portal.cancel_actor()

    trio.run(main)


def test_parent_block_error_cancels_child(reg_addr, start_method):
    '''
    Outcome matrix row "P's block raises `E`": `E` propagates
    unchanged and the child gets a cancel request.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'sleeper',
                    enable_modules=[__name__],
                )
                with pytest.raises(ZeroDivisionError):
                    async with portal.open_context(
                        sleep_forever_ctx,
                    ) as (ctx, _):
                        1 / 0

                assert ctx.cancel_called
                assert isinstance(ctx._local_error, ZeroDivisionError)
                # the child acked our cancel request
                assert ctx.cancel_acked
                state = await portal.run(get_state)
                assert state['cancelled'] == 1
                await portal.cancel_actor()

    trio.run(main)


@pytest.mark.parametrize(
    'then', ['wait_for_result', 'sleep'],
)
def test_portal_cancel_actor_raises_ctxc(reg_addr, start_method, then):
    '''
    Outcome matrix row "P calls `portal.cancel_actor()`": the open
    context raises `ContextCancelled` with the parent as the
    requesting `canceller`; `ctx.canceller` is the child (the direct
    peer). Whether the block then waits on the ctx or sleeps in an
    unrelated await (woken by the ctxc) makes no difference.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'victim',
                    enable_modules=[__name__],
                )
                child_uid = portal.chan.aid.uid
                with pytest.raises(ContextCancelled) as excinfo:
                    async with portal.open_context(
                        sleep_forever_ctx,
                    ) as (ctx, _):
                        assert await portal.cancel_actor()
                        if then == 'wait_for_result':
                            await ctx.wait_for_result()
                        else:
                            await trio.sleep(10)
                        pytest.fail('no ctxc raised')

                ctxc = excinfo.value
                assert ctxc.canceller == own_uid()
                assert ctxc.src_uid == child_uid
                assert ctxc.boxed_type is ContextCancelled
                assert ctx.chan._cancel_called
                assert not ctx.cancel_acked
                assert ctx.canceller == child_uid

    trio.run(main)


# ---- the child cancelling itself ----

def test_child_self_cancel(reg_addr, start_method):
    '''
    Outcome matrix row "C calls `ctx.cancel()` on itself": the parent
    gets `ContextCancelled` raised with the child as canceller.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'self_canceller',
                    enable_modules=[__name__],
                )
                child_uid = portal.chan.aid.uid
                with pytest.raises(ContextCancelled) as excinfo:
                    async with portal.open_context(
                        self_cancelling_ctx,
                    ) as (ctx, _):
                        await trio.sleep(10)
                        pytest.fail('parent was not woken by the ctxc')

                ctxc = excinfo.value
                assert ctxc.canceller == child_uid
                assert ctxc.src_uid == child_uid
                assert 'itself' in ctxc.tb_str
                assert ctx.canceller == child_uid
                await portal.cancel_actor()

    trio.run(main)


# ---- a third actor cancelling the child ----

async def cancel_peer_by_name(name: str) -> bool:
    async with tractor.find_actor(name) as portal:
        assert portal is not None
        # generous: the subject is who cancelled whom, not the ack deadline
        # (the default 0.5 s is missed now and then on a loaded box)
        return await portal.cancel_actor(timeout=5)


async def open_ctx_into(name: str) -> dict:
    '''
    From a second actor, open a context into actor `name` and report
    the `ContextCancelled` it ends with.

    '''
    async with tractor.wait_for_actor(name) as portal:
        try:
            async with portal.open_context(sleep_forever_ctx) as (ctx, _):
                _state['sibling_ctx_open'] = True
                await trio.sleep_forever()
        except ContextCancelled as ctxc:
            return {
                'canceller': ctxc.canceller,
                'src_uid': ctxc.src_uid,
                'ctx_canceller': ctx.canceller,
            }
    return {}


async def is_sibling_ctx_open() -> bool:
    return _state.get('sibling_ctx_open', False)


def test_third_actor_cancels_child(reg_addr, start_method):
    '''
    Outcome matrix row "X calls `cancel_actor()` on C": every actor
    with a context open into C gets `ContextCancelled` whose
    `canceller` is X, while its `ctx.canceller` is C.

    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                victim = await an.start_actor(
                    'victim',
                    enable_modules=[__name__],
                )
                victim_uid = victim.chan.aid.uid
                sibling = await an.start_actor(
                    'sibling',
                    enable_modules=[__name__],
                )
                killer = await an.start_actor(
                    'killer',
                    enable_modules=[__name__],
                )
                killer_uid = killer.chan.aid.uid

                sibling_report: dict = {}

                async def run_sibling():
                    sibling_report.update(
                        await sibling.run(open_ctx_into, name='victim')
                    )

                async with trio.open_nursery() as tn:
                    tn.start_soon(run_sibling)
                    with pytest.raises(ContextCancelled) as excinfo:
                        async with portal_ctx(victim) as ctx:
                            # wait for the sibling's ctx to be open too
                            while not await sibling.run(is_sibling_ctx_open):
                                await trio.sleep(0.05)
                            assert await killer.run(
                                cancel_peer_by_name,
                                name='victim',
                            )
                            await trio.sleep(10)
                            pytest.fail('ctx was not cancelled')

                ctxc = excinfo.value
                assert ctxc.canceller == killer_uid
                assert ctxc.src_uid == victim_uid
                assert ctx.canceller == victim_uid

                # the sibling saw the same thing from its side
                assert tuple(sibling_report['canceller']) == killer_uid
                assert tuple(sibling_report['src_uid']) == victim_uid
                assert tuple(sibling_report['ctx_canceller']) == victim_uid
                await an.cancel()

    trio.run(main)


class portal_ctx:
    '''
    `async with portal_ctx(portal) as ctx:` opens a `sleep_forever_ctx`
    dialog and yields only the ctx (keeps a nested block readable).

    '''
    def __init__(self, portal):
        self._cm = portal.open_context(sleep_forever_ctx)

    async def __aenter__(self):
        ctx, _ = await self._cm.__aenter__()
        return ctx

    async def __aexit__(self, *exc):
        return await self._cm.__aexit__(*exc)


# ---- an actor cancelled with several contexts open ----

def test_actor_cancel_cancels_all_contexts(reg_addr, start_method):
    '''
    Cancelling an actor that serves several open contexts cancels
    every one of them: each parent block gets `ContextCancelled`.

    '''
    n_ctxs = 3

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'multi',
                    enable_modules=[__name__],
                )
                child_uid = portal.chan.aid.uid
                ctxcs: list[ContextCancelled] = []
                opened = 0
                all_open = trio.Event()

                async def open_one():
                    nonlocal opened
                    try:
                        async with portal.open_context(
                            sleep_forever_ctx,
                        ) as (ctx, _):
                            opened += 1
                            if opened == n_ctxs:
                                all_open.set()
                            await trio.sleep_forever()
                    except ContextCancelled as ctxc:
                        ctxcs.append(ctxc)

                async with trio.open_nursery() as tn:
                    for _ in range(n_ctxs):
                        tn.start_soon(open_one)
                    await all_open.wait()
                    assert (await portal.run(get_state))['entered'] == n_ctxs
                    assert await portal.cancel_actor()

                assert len(ctxcs) == n_ctxs
                for ctxc in ctxcs:
                    assert ctxc.canceller == own_uid()
                    assert ctxc.src_uid == child_uid

    trio.run(main)


# ---- a grandchild's context cancelled through its parent ----

def test_grandchild_ctx_cancelled_through_parent(reg_addr, start_method):
    '''
    root -> mid -> grandchild: cancelling the root's context with `mid`
    cancels mid's task, whose `open_context()` block then cancels the
    grandchild's dialog (ack'd) and reaps the grandchild.

    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'mid',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    mid_spawns_grandchild,
                ) as (ctx, gc_uid):
                    assert gc_uid[0] == 'grandchild'
                    await ctx.cancel()

                res = await ctx.wait_for_result()
                assert isinstance(res, ContextCancelled)
                assert res.canceller == own_uid()
                assert ctx.cancel_acked

                state = await portal.run(get_state)
                # mid's block was cancelled, so it cancelled the grandchild
                assert state['gctx_cancel_called'] is True
                assert state['gctx_local_error'] == 'Cancelled'
                # ... and that cancel was acknowledged by the grandchild
                assert state['gctx_remote_error'] == 'ContextCancelled'
                # mid requested (and got acked) the grandchild's cancel
                assert tuple(state['gctx_canceller']) == portal.chan.aid.uid
                assert state['grandchildren_left'] == 0
                await portal.cancel_actor()

    trio.run(main)


# ---- overruns ----

def test_parent_overruns_child_without_stream(reg_addr, start_method):
    '''
    The parent sends 65 messages into a child that never opened its
    stream: the child's feeder (64) overflows and the parent fails
    with a boxed `StreamOverrun`.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'no_reader',
                    enable_modules=[__name__],
                )
                with pytest.raises(RemoteActorError) as excinfo:
                    async with (
                        portal.open_context(never_opens_stream) as (ctx, _),
                        ctx.open_stream() as stream,
                    ):
                        for i in range(65):
                            await stream.send(i)
                        # the overrun report wakes us from here
                        await trio.sleep(10)
                        pytest.fail('no overrun reported')

                rae = excinfo.value
                assert rae.boxed_type is StreamOverrun
                assert rae.src_uid == portal.chan.aid.uid
                assert tuple(rae.sender) == own_uid()
                await portal.cancel_actor()

    trio.run(main)


def test_child_overruns_parent_without_stream(reg_addr, start_method):
    '''
    The child floods a parent that never opened its stream: the child
    gets the overrun error, fails with it, and its failure comes back
    to the parent relayed (boxed `RemoteActorError`, 'StreamOverrun'
    in the traceback).

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'flooder',
                    enable_modules=[__name__],
                )
                with pytest.raises(RemoteActorError) as excinfo:
                    async with portal.open_context(
                        flood_parent,
                        count=1000,
                    ) as (ctx, _):
                        await trio.sleep(10)
                        pytest.fail('no error relayed from the child')

                rae = excinfo.value
                assert rae.boxed_type is RemoteActorError
                assert rae.relay_uid == portal.chan.aid.uid
                assert 'StreamOverrun' in rae.tb_str
                await portal.cancel_actor()

    trio.run(main)


def test_allow_overruns_parent_side(reg_addr, start_method):
    '''
    With `allow_overruns=True` on the parent's side, a child that
    floods it before the parent opens its stream loses nothing.

    '''
    count = 500

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'flooder',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    flood_parent,
                    count=count,
                    allow_overruns=True,
                ) as (ctx, _):
                    # let the child fill our feeder well past its size
                    await trio.sleep(0.5)
                    got: list[int] = []
                    async with ctx.open_stream() as stream:
                        async for i in stream:
                            got.append(i)
                            if len(got) == count:
                                break

                assert got == list(range(count))
                assert ctx.maybe_error is None
                await portal.cancel_actor()

    trio.run(main)


def test_allow_overruns_child_side(reg_addr, start_method):
    '''
    With `allow_overruns=True` on the child's stream, a parent that
    sends more than the feeder holds before the child reads loses
    nothing.

    '''
    count = 300

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'slow_reader',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    slow_stream_reader,
                ) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        # the child's stream (and its overrun policy)
                        # exists once it says so
                        assert await stream.receive() == 'ready'
                        for i in range(count):
                            await stream.send(i)

                    assert await ctx.wait_for_result() == list(range(count))

                await portal.cancel_actor()

    trio.run(main)
