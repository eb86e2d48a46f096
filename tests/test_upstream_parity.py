'''
Outcomes that code written for upstream `tractor` relies on, one test (or
a few) per entry of the measured behaviour delta (the entries' numbers are
in the test docstrings): errors a context child raises while being
cancelled, `MsgStream.send()` as a scheduling point, the cause chain of a
`TransportClosed`, re-opening a stream, the parent's `__main__` in
children, enabled modules that cannot be imported, transport/registry
mismatch wording, and the appendix's smaller items.

'''
import pytest
import trio
import tractor
from tractor._exceptions import (
    ContextCancelled,
    RemoteActorError,
)
from tractor._testing import nursery_kwargs


def own_uid() -> tuple[str, str]:
    return tractor.current_actor().aid.uid


# ---- entry 1: an error raised while the child is being cancelled ----

@tractor.context
async def raise_while_cancelled(ctx: tractor.Context) -> None:
    '''Shape (a): the child turns its cancellation into a real error.'''
    await ctx.started()
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        raise ValueError('raised while handling the cancellation')


@tractor.context
async def error_masked_by_cancel(ctx: tractor.Context) -> None:
    '''
    Shape (b): the child already failed; the cancel request arrives while
    its `finally:` cleans up, and an unshielded checkpoint there replaces
    the `RuntimeError` with a `trio.Cancelled`.
    '''
    await ctx.started()
    try:
        await trio.sleep(0.2)
        raise RuntimeError('app crashed')
    finally:
        with trio.CancelScope(shield=True):
            await trio.sleep(0.6)
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize(
    'endpoint, boxed',
    [
        (raise_while_cancelled, ValueError),
        (error_masked_by_cancel, RuntimeError),
    ],
    ids=['raise-in-cancel-handler', 'error-masked-by-cancelled'],
)
def test_error_while_cancelling_ctx_reaches_parent(
    reg_addr,
    start_method,
    endpoint,
    boxed,
):
    '''
    Entry 1: `ctx.cancel()` and the child ends with a real error instead
    of its cancellation. The parent gets that error (not an ack of its own
    cancel): from `wait_for_result()` and from the `open_context()` block;
    `ctx.outcome`/`maybe_error` are it and `cancel_acked` is False.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'cancel_then_fail',
                    enable_modules=[__name__],
                )
                from_result: RemoteActorError|None = None
                with pytest.raises(RemoteActorError) as excinfo:
                    async with portal.open_context(endpoint) as (ctx, _):
                        await trio.sleep(0.4)
                        await ctx.cancel()
                        try:
                            await ctx.wait_for_result()
                        except RemoteActorError as rae:
                            from_result = rae
                            raise
                assert from_result is not None
                assert from_result.boxed_type is boxed
                rae = excinfo.value
                assert rae.boxed_type is boxed
                assert rae.src_uid == portal.chan.aid.uid
                assert ctx.cancel_called
                assert not ctx.cancel_acked
                assert ctx.maybe_error is rae
                assert ctx.outcome is rae
                assert not isinstance(ctx.outcome, ContextCancelled)

                await portal.cancel_actor()

    trio.run(main)
