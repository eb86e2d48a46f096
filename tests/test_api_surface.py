'''
Small pieces of upstream's public surface that user code reaches for:
`current_ipc_ctx()` inside every kind of RPC task, `LocalPortal.channel`,
`IPCServer.addrs`, `Actor.cancel_rpc_tasks()` / `get_context()` /
`repr_state` / `pformat()`, `Context.pformat()`, and `hide_tb=` on
`MsgStream.send()` / `Channel.send()`.

'''
import pytest
import trio
import tractor
from tractor._testing import nursery_kwargs
from tractor.runtime._portal import LocalPortal


# ---- `current_ipc_ctx()` in every RPC task ----

def _ctx_facts() -> dict:
    ctx = tractor.current_ipc_ctx()
    return {
        'side': ctx.side,
        'cid': ctx.cid,
        'peer': tuple(ctx.chan.aid.uid),
        'nsf': ctx._nsf,
    }


async def plain_func() -> dict:
    return _ctx_facts()


async def agen_func():
    yield _ctx_facts()


@tractor.context
async def ctx_func(ctx: tractor.Context) -> dict:
    await ctx.started()
    facts = _ctx_facts()
    assert tractor.current_ipc_ctx() is ctx
    return facts


def test_current_ipc_ctx_in_every_rpc_task(reg_addr, start_method):
    '''
    `tractor.current_ipc_ctx()` is the callee-side `Context` of the
    current RPC inside a plain `async def` run by `Portal.run()`, an
    async generator streamed by `open_stream_from()`, and a `@context`
    endpoint; outside any dialog it is `None`.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'callee',
                    enable_modules=[__name__],
                )
                me = tractor.current_actor().aid.uid
                assert tractor.current_ipc_ctx() is None

                facts = await portal.run(plain_func)
                assert facts['side'] == 'child'
                assert tuple(facts['peer']) == me
                assert facts['nsf'] == f'{__name__}:plain_func'

                with pytest.warns(DeprecationWarning):
                    async with portal.open_stream_from(agen_func) as stream:
                        facts = await stream.receive()
                assert facts['side'] == 'child'
                assert facts['nsf'] == f'{__name__}:agen_func'
                assert facts['cid'] == stream.ctx.cid

                async with portal.open_context(ctx_func) as (ctx, _):
                    facts = await ctx.wait_for_result()
                assert facts['cid'] == ctx.cid
                assert facts['side'] == 'child'
                await portal.cancel_actor()

    trio.run(main)


# ---- `Actor`: `get_context()`, `cancel_rpc_tasks()`, state ----

_parked: dict[str, int] = {'cancelled': 0}


async def park() -> None:
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        _parked['cancelled'] += 1
        raise


async def cancel_rpc_tasks_of(requester_uid: tuple[str, str]) -> dict:
    '''Cancel this actor's RPC tasks (not this one) and report.'''
    actor = tractor.current_actor()
    before = len(actor._rpc_tasks)
    cancellers = []
    for task in actor._rpc_tasks.values():
        if task.task is not trio.lowlevel.current_task():
            cancellers.append(task.ctx)
    await actor.cancel_rpc_tasks(
        req_aid=tractor.msg.Aid(name=requester_uid[0], uuid=requester_uid[1]),
    )
    return {
        'before': before,
        'after': len(actor._rpc_tasks),
        'cancelled': _parked['cancelled'],
        'cancellers': [tuple(ctx._canceller) for ctx in cancellers],
    }


async def actor_state() -> dict:
    actor = tractor.current_actor()
    return {
        'repr_state': actor.repr_state,
        'pformat': actor.pformat(privates=True),
        'server_addrs': [addr.unwrap() for addr in actor.ipc_server.addrs],
        'accept_addrs': actor.accept_addrs,
    }


def test_actor_cancel_rpc_tasks_and_state(reg_addr, start_method):
    '''
    `Actor.cancel_rpc_tasks()` cancels the RPC tasks an actor runs (not
    the calling one) and waits for them, naming the requester as their
    canceller; the actor keeps serving. `repr_state`/`pformat()` describe
    an actor; `IPCServer.addrs` are its listening addresses.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'parker',
                    enable_modules=[__name__],
                )
                async with trio.open_nursery() as tn:
                    for _ in range(3):
                        tn.start_soon(portal.run, park)
                    state = await portal.run(actor_state)
                    while 'rpc_tasks=4' not in state['pformat']:
                        await trio.sleep(0.01)
                        state = await portal.run(actor_state)
                    assert state['repr_state'] == 'running'
                    assert "name='parker'" in state['pformat']
                    assert state['server_addrs'] == state['accept_addrs']
                    requester = ('someone', 'some-uuid')
                    report = await portal.run(
                        cancel_rpc_tasks_of, requester_uid=requester,
                    )
                    # the parked calls got no reply (plain RPC tasks
                    # cancelled remotely stay silent): end them here
                    tn.cancel_scope.cancel()
                assert report['before'] == 4
                assert report['after'] == 1
                assert report['cancelled'] == 3
                assert [tuple(uid) for uid in report['cancellers']] == [requester] * 3

                # still serving
                state = await portal.run(actor_state)
                assert state['repr_state'] == 'running'

                root = tractor.current_actor()
                assert root.repr_state == 'running'
                assert root.ipc_server.addrs
                await portal.cancel_actor()

    trio.run(main)


def test_get_context_and_local_portal(reg_addr, start_method):
    '''
    `Actor.get_context()` returns the open dialog for `(chan, cid)` (the
    very object `open_context()` yields) and registers a new one
    otherwise; `LocalPortal.channel` is the channel it was made with.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                actor = tractor.current_actor()
                portal = await an.start_actor(
                    'peer',
                    enable_modules=[__name__],
                )
                async with portal.open_context(ctx_func) as (ctx, _):
                    assert actor.get_context(portal.chan, ctx.cid) is ctx
                    assert 'ctx_func' in ctx.pformat()
                    await ctx.wait_for_result()
                assert "state='result-returned'" in ctx.pformat()

                fresh = actor.get_context(portal.chan, 'a-new-cid', nsf='mod:fn')
                assert fresh.cid == 'a-new-cid'
                assert fresh.side == 'parent'
                assert actor.get_context(portal.chan, 'a-new-cid') is fresh
                actor._contexts.pop((portal.chan.aid.uid, 'a-new-cid'))

                local = LocalPortal(actor, portal.chan)
                assert local.channel is portal.chan
                await portal.cancel_actor()

    trio.run(main)


# ---- `hide_tb=` on the send APIs ----

@tractor.context
async def echo_stream(ctx: tractor.Context) -> None:
    await ctx.started()
    async with ctx.open_stream() as stream:
        async for msg in stream:
            await stream.send(msg, hide_tb=False)


def test_send_hide_tb(reg_addr, start_method):
    '''
    `MsgStream.send()` and `Channel.send()` take `hide_tb=`: their frame
    is kept out of a failure's traceback by default and shown with
    `hide_tb=False`.
    '''
    def shows_frame(tb, name: str) -> bool:
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code.co_name == name and not frame.f_locals.get(
                '__tracebackhide__', False,
            ):
                return True
            tb = tb.tb_next
        return False

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'echo',
                    enable_modules=[__name__],
                )
                async with (
                    portal.open_context(echo_stream) as (ctx, _),
                    ctx.open_stream() as stream,
                ):
                    await stream.send('hi', hide_tb=False)
                    assert await stream.receive() == 'hi'
                    for hide in (True, False):
                        with pytest.raises(tractor.MsgTypeError) as excinfo:
                            await stream.send(object(), hide_tb=hide)
                        assert shows_frame(excinfo.tb, 'send') is not hide
                await portal.cancel_actor()

    trio.run(main)
