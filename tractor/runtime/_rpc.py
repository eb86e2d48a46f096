'''
Serving one channel: the per-channel message loop, and the task that runs
one remote procedure call.

The loop's cost per message is a decode (in the channel) and a dispatch on
the message's type: a reply is pushed into its dialog's feeder channel, a
request becomes a task in the actor's service nursery.
'''
from __future__ import annotations

import inspect
import weakref
from contextlib import aclosing
from typing import (
    Any,
    Callable,
    TYPE_CHECKING,
)

import trio

from tractor import log
from tractor._context import (
    Context,
    _pld_dec_for,
)
from tractor._exceptions import (
    ContextCancelled,
    ModuleNotExposed,
    MsgTypeError,
    TransportClosed,
    pack_error,
    unpack_error,
)
from tractor.ipc import Channel
from tractor.msg._ops import _ctxvar_Context
from tractor.trionics._eg import (
    collapse_exc,
    is_multi_cancelled,
)
from . import _debug_hooks
from tractor.msg.types import (
    CancelAck,
    Error,
    Return,
    Start,
    StartAck,
    Stop,
    Yield,
)

if TYPE_CHECKING:
    from ._runtime import Actor

logger = log.get_logger()


class RpcTask:
    '''Bookkeeping for one running remote procedure call.'''
    __slots__ = ('ctx', 'func', 'done', 'task')

    def __init__(self, ctx: Context, func: Callable) -> None:
        self.ctx = ctx
        self.func = func
        self.done = trio.Event()
        # the trio task running it, once it started
        self.task: trio.lowlevel.Task|None = None

    # `actor._rpc_tasks` values unpack like upstream's `(ctx, func, done)`
    def __iter__(self):
        return iter((self.ctx, self.func, self.done))


# bound on shipping a task's error from under a shield: only a peer that
# stopped reading (its socket buffer full) can make it wait at all
SHIP_ERROR_TIMEOUT: float = 3.0
# how long a channel's message loop, ending, keeps the channel open for
# the acks of the cancel requests it received (see `_acks_owed`)
CANCEL_ACK_GRACE: float = 3.0

# per channel, the cancel requests being served in tasks of their own
# whose `CancelAck` is still owed: the loop ending (e.g. the actor's own
# cancel ending its service nursery) waits for them before the channel
# closes, so a requester always gets its ack
_acks_owed: weakref.WeakKeyDictionary[Channel, set[trio.Event]] = (
    weakref.WeakKeyDictionary()
)


async def _ship_error(
    actor: Actor,
    chan: Channel,
    err: BaseException,
    cid: str|None,
) -> None:
    '''
    Send `err` boxed to the peer; a dead channel is not a new failure.

    A task's real error is shipped under a (bounded) shield: it often
    arises in a task whose scope is already cancelled (an error raised
    while handling its cancellation), and a cancelled send would lose it
    (the caller would then take our cancellation for the ack of its own
    cancel request). A `ContextCancelled` is sent unshielded: it only
    reports the cancellation that is already under way.
    '''
    msg = pack_error(err, cid=cid, own_uid=actor.aid.uid)
    try:
        if isinstance(err, ContextCancelled):
            await chan.send(msg)
            return
        with trio.CancelScope(shield=True) as cs:
            cs.deadline = trio.current_time() + SHIP_ERROR_TIMEOUT
            await chan.send(msg)
        if cs.cancelled_caught:
            logger.warning(
                f'Could not ship {type(err).__name__} to {chan!r} within '
                f'{SHIP_ERROR_TIMEOUT} s: the peer does not read'
            )
    except TransportClosed:
        logger.runtime(f'Could not ship {type(err).__name__} to {chan!r}: channel closed')


async def _await_unmasked(target: Any) -> Any:
    '''
    Await a context endpoint; when it ends with a `trio.Cancelled` that
    replaced a real error still in flight (an unshielded `await` in a
    `finally:` of a task that had failed and was then cancelled), raise
    that error instead, so the caller learns why the task really ended.
    Only this innermost await is unmasked: a cancellation hiding an error
    anywhere else (nurseries, groups) keeps its meaning.
    '''
    try:
        return await target
    except trio.Cancelled as cancelled:
        masked = cancelled.__context__
        if (
            not isinstance(masked, Exception)
            or isinstance(masked, ContextCancelled)
        ):
            raise
        masked.add_note(
            'This error was hidden by a `trio.Cancelled` raised while it was '
            'still being handled (an unshielded `await` in a `finally:`).'
        )
        raise masked from cancelled


def _functype(func: Callable) -> str:
    '''How a target function talks to its caller.'''
    if getattr(func, '_tractor_context_function', False):
        return 'context'
    if inspect.isasyncgenfunction(func):
        return 'asyncgen'
    if getattr(func, '_tractor_stream_function', False):
        return 'stream'
    if inspect.iscoroutinefunction(func):
        return 'asyncfunc'
    raise TypeError(
        f'{getattr(func, "__qualname__", func)!r} is not an `async def` '
        'function and can not be run remotely'
    )


def _ctxc_for(actor: Actor, ctx: Context) -> BaseException:
    '''Why a context task's scope was cancelled, as the error to ship.'''
    if ctx._remote_error is not None:
        return ctx._remote_error
    canceller = ctx._canceller or actor.aid.uid
    if canceller == actor.aid.uid:
        why = f'Actor {actor.name!r} cancelled itself ({ctx._nsf})'
    else:
        why = f'Cancelled by remote request from {canceller!r} ({ctx._nsf})'
    return ContextCancelled(why, boxed_type=trio.Cancelled, canceller=canceller)


async def _run_target(
    ctx: Context,
    func: Callable,
    kind: str,
    kwargs: dict[str, Any],
) -> None:
    '''Start the target, acknowledge it, and report its outcome by kind.'''
    chan, cid = ctx.chan, ctx.cid
    if kind == 'context':
        ctx.parent_task = trio.lowlevel.current_task()
        meta = func._tractor_context_meta
        kwargs = {**kwargs, meta['ctx_var_name']: ctx}
        dec = _pld_dec_for(func)
        if dec is not None:
            ctx._pld_rx._pld_dec = dec
    elif kind == 'stream':
        params = inspect.signature(func).parameters
        kwargs = {
            **kwargs,
            **{name: ctx for name in ('ctx', 'stream') if name in params},
        }
    # any target may ask who called it (`current_ipc_ctx()`); every RPC
    # runs in a task of its own, with its own copy of the contextvars, so
    # this never needs undoing
    _ctxvar_Context.set(ctx)
    target = func(**kwargs)
    try:
        await chan.send(
            StartAck(cid=cid, functype='asyncgen' if kind == 'stream' else kind),
            schedule=False,
        )
    except TransportClosed:
        logger.runtime(f'Caller of {ctx._nsf!r} is gone; running it anyway')
    except BaseException:
        # cancelled before it ran: it never will (and must not warn so)
        if inspect.iscoroutine(target):
            target.close()
        raise

    if kind == 'asyncgen':
        # `Stop` once exhausted or cancelled; a failure ships an `Error`
        # instead, so the consumer can not mistake it for a clean end
        try:
            async with aclosing(target) as agen:
                async for item in agen:
                    await chan.send(Yield(cid=cid, pld=item))
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await _send_quietly(chan, Stop(cid=cid))
            raise
        await _send_quietly(chan, Stop(cid=cid))
        return

    if kind == 'context':
        result = await _await_unmasked(target)
    else:
        result = await target
    if kind == 'stream':
        await _send_quietly(chan, Stop(cid=cid))
        return
    try:
        await chan.send(Return(cid=cid, pld=result), schedule=False)
    except MsgTypeError as mte:
        await _ship_error(ctx._actor, chan, mte, cid)
    except TransportClosed:
        logger.runtime(f'Caller of {ctx._nsf!r} is gone; result dropped')


async def _send_quietly(chan: Channel, msg: Any) -> None:
    try:
        await chan.send(msg)
    except TransportClosed:
        pass


async def _invoke(
    actor: Actor,
    cid: str,
    chan: Channel,
    func: Callable,
    kwargs: dict[str, Any],
    task: RpcTask,
) -> None:
    '''Run one requested function and send its outcome to the caller.'''
    task.task = trio.lowlevel.current_task()
    ctx = task.ctx
    kind = 'asyncfunc'
    try:
        with ctx._scope:
            try:
                kind = _functype(func)
                if kind == 'context':
                    # a dialog may need a background task (overflow pump)
                    async with trio.open_nursery() as tn:
                        ctx._scope_nursery = tn
                        await _run_target(ctx, func, kind, kwargs)
                else:
                    await _run_target(ctx, func, kind, kwargs)
            except trio.Cancelled:
                raise
            except KeyboardInterrupt as kbi:
                await _ship_error(actor, chan, kbi, cid)
                raise
            except BaseException as err:
                if isinstance(err, BaseExceptionGroup):
                    if is_multi_cancelled(err):
                        raise
                    err = collapse_exc(err)
                logger.runtime(f'RPC task {ctx._nsf!r} failed with {err!r}')
                if (hooks := _debug_hooks.installed) is not None:
                    # debug mode: a post-mortem REPL here, before it travels
                    await hooks.crashed(actor, err, ctx)
                await _ship_error(actor, chan, err, cid)
        if ctx._scope.cancelled_caught and kind == 'context':
            # only context dialogs report cancellation to the caller
            await _ship_error(actor, chan, _ctxc_for(actor, ctx), cid)
    finally:
        actor._contexts.pop((chan.aid.uid, cid), None)
        actor._rpc_tasks.pop((chan, cid), None)
        if not actor._rpc_tasks:
            actor._ongoing_rpc_tasks.set()
        task.done.set()


def _cancel_request_args(msg: Start) -> dict[str, Any]:
    '''The kwargs of a runtime cancel request, checked before it runs.'''
    if msg.func == 'cancel':
        allowed: set[str] = set()
    else:
        allowed = {'cid'}
        if not isinstance(msg.kwargs.get('cid'), str):
            raise TypeError(
                f"'self:_cancel_task' needs a `cid: str` argument naming the "
                f'task to cancel, got kwargs {msg.kwargs!r}'
            )
    unknown = set(msg.kwargs) - allowed
    if unknown:
        raise TypeError(
            f"'self:{msg.func}' got unexpected arguments {sorted(unknown)!r}"
        )
    return msg.kwargs


async def _handle_cancel_request(
    actor: Actor,
    chan: Channel,
    msg: Start,
) -> None:
    '''
    Serve a runtime cancel endpoint: received (`StartAck`) at once,
    shielded, and acked only once done.
    '''
    cid = msg.cid
    try:
        kwargs = _cancel_request_args(msg)
    except TypeError as err:
        await _ship_error(actor, chan, err, cid)
        return
    with trio.CancelScope(shield=True):
        if msg.func == 'cancel' and (hooks := _debug_hooks.installed) is not None:
            # never cancel an actor under the user's fingers
            await hooks.wait_for_local_repl()
        try:
            await chan.send(StartAck(cid=cid, functype='asyncfunc'))
            if msg.func == 'cancel':
                result = await actor.cancel(chan)
            else:
                result = await actor._cancel_task(
                    kwargs['cid'], chan, requesting_aid=chan.aid,
                )
            await chan.send(CancelAck(cid=cid, pld=bool(result)))
        except TransportClosed:
            logger.runtime(f'Requester of {msg.func!r} left before the ack')


async def _serve_cancel_request(actor: Actor, chan: Channel, msg: Start) -> None:
    '''`_handle_cancel_request()` in a task of its own, its ack owed on `chan`.'''
    acked = trio.Event()
    _acks_owed.setdefault(chan, set()).add(acked)
    try:
        await _handle_cancel_request(actor, chan, msg)
    finally:
        acked.set()
        owed = _acks_owed.get(chan)
        if owed is not None:
            owed.discard(acked)


async def _wait_for_owed_acks(chan: Channel) -> None:
    '''Before the loop of `chan` ends: the cancel acks still owed on it.'''
    owed = _acks_owed.pop(chan, None)
    if not owed or not chan.connected():
        # (a requester that left gets no ack anyway)
        return
    with trio.CancelScope(shield=True) as cs:
        cs.deadline = trio.current_time() + CANCEL_ACK_GRACE
        for acked in list(owed):
            await acked.wait()
    if cs.cancelled_caught:
        logger.warning(f'Cancel request(s) on {chan!r} not acked in time')


def _resolve_target(actor: Actor, msg: Start) -> Callable:
    '''The function a `Start` names, or a clear error why it can't be run.'''
    if msg.ns == 'self':
        if msg.func not in actor._self_rpc_methods:
            raise AttributeError(
                f'Actor {actor.name!r} exposes no runtime method {msg.func!r}'
            )
        return getattr(actor, msg.func)
    module = actor._mods.get(msg.ns)
    if module is None:
        raise ModuleNotExposed(
            f'Module {msg.ns!r} is not enabled in actor {actor.name!r}; '
            f'pass it in `enable_modules=[{msg.ns!r}]` to expose it for RPC'
        )
    try:
        return getattr(module, msg.func)
    except AttributeError:
        raise AttributeError(
            f'Module {msg.ns!r} in actor {actor.name!r} has no function {msg.func!r}'
        ) from None


async def _handle_start(
    actor: Actor,
    chan: Channel,
    msg: Start,
) -> bool:
    '''Serve one `Start`; returns True when the loop must end after it.'''
    cid = msg.cid
    if tuple(msg.uid) != chan.aid.uid:
        await _ship_error(actor, chan, RuntimeError(
            f'`Start.uid` {tuple(msg.uid)!r} does not match the peer '
            f'{chan.aid.uid!r} of this channel'
        ), cid)
        return False

    if msg.ns == 'self' and msg.func in ('cancel', '_cancel_task'):
        # not inline: what is cancelled may take its time to end (a task's
        # cleanup, our whole subtree), and this loop must go on reading
        # meanwhile, so that every other cancel request is received at
        # once too (its requester tells a busy actor from a stuck one by
        # that). Cancelling this actor ends this loop.
        try:
            actor._service_tn.start_soon(
                _serve_cancel_request, actor, chan, msg, name=f'self:{msg.func}',
            )
        except RuntimeError:
            # the service nursery is closed: we are all but gone already
            await _handle_cancel_request(actor, chan, msg)
        return False

    try:
        func = _resolve_target(actor, msg)
    except (ModuleNotExposed, AttributeError) as err:
        await _ship_error(actor, chan, err, cid)
        return False

    ctx = Context(
        chan,
        cid,
        side='child',
        nsf=f'{msg.ns}:{msg.func}',
        msg_buffer_size=actor.msg_buffer_size,
    )
    ctx._scope = trio.CancelScope()
    task = RpcTask(ctx, func)
    actor._rpc_tasks[(chan, cid)] = task
    actor._contexts[(chan.aid.uid, cid)] = ctx
    if actor._ongoing_rpc_tasks.is_set():
        actor._ongoing_rpc_tasks = trio.Event()
    actor._service_tn.start_soon(
        _invoke, actor, cid, chan, func, msg.kwargs, task,
        name=msg.func,
    )
    return False


async def _report_overrun(actor: Actor, chan: Channel, ctx: Context) -> None:
    '''
    Tell a sender that our side of a dialog overflowed (once per dialog);
    the overflowing message was dropped.
    '''
    if ctx._overrun_reported:
        return
    ctx._overrun_reported = True
    why = (
        f'Stream overrun: {ctx!r} in actor {actor.name!r} received more than '
        f'its buffer of {ctx._send_chan._state.max_buffer_size} messages '
        'without reading them; pass `allow_overruns=True` to buffer instead'
    )
    # our own reader must learn about the gap too, or it would see a clean
    # but truncated stream once the sender has finished
    ctx._mark_overrun_gap(why)
    await _send_quietly(chan, Error(
        src_uid=actor.aid.uid,
        src_type_str='StreamOverrun',
        boxed_type_str='StreamOverrun',
        relay_path=[actor.aid.uid],
        message=why,
        tb_str=why,
        sender=chan.aid.uid,
        cid=ctx.cid,
    ))


async def _on_bad_msg(actor: Actor, chan: Channel, mte: MsgTypeError) -> None:
    '''
    A message that decoded as a frame but not as a valid message: a request
    gets the error as its reply (its caller waits for one), anything else
    is logged and dropped.
    '''
    bad = mte.bad_msg_as_dict or {}
    if bad.get('msg_type') == 'Start' and isinstance(bad.get('cid'), str):
        logger.warning(f'Refusing an invalid request from {chan!r}: {mte.message}')
        await _ship_error(actor, chan, mte, bad['cid'])
    else:
        logger.error(f'Dropping an invalid msg from {chan!r}:\n{mte.message}')


async def _on_dispatch_error(
    actor: Actor,
    chan: Channel,
    msg: Any,
    err: Exception,
) -> None:
    '''Box a failure to act on `msg` to its sender, or log and drop it.'''
    where = f'{type(msg).__name__} from {chan!r}'
    if not hasattr(msg, 'cid'):
        # e.g. an `Aid` or `SpawnSpec`: only valid while connecting
        logger.warning(f'Dropping an out-of-place {where}')
        return
    cid = msg.cid
    if isinstance(cid, str) and type(msg) is Start:
        logger.warning(f'Failed to serve {where}: {err!r}')
        await _ship_error(actor, chan, err, cid)
    else:
        logger.exception(f'Dropping {where} which failed to dispatch')


async def process_messages(
    actor: Actor,
    chan: Channel,
    shield: bool = False,
    task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
) -> bool:
    '''
    Serve `chan` until the peer leaves, asks us to cancel, or the loop's
    scope (reported through `task_status`) is cancelled. Returns whether the
    channel ended gracefully.
    '''
    contexts = actor._contexts
    peer_uid = chan.aid.uid
    graceful = False
    lost: TransportClosed|None = None
    with trio.CancelScope(shield=shield) as loop_cs:
        task_status.started(loop_cs)
        try:
            while True:
                try:
                    # the rest of a burst is decoded without a coroutine
                    msg = chan.recv_ready()
                    if msg is None:
                        msg = await chan.recv()
                except MsgTypeError as mte:
                    await _on_bad_msg(actor, chan, mte)
                    continue
                except TransportClosed as tc:
                    lost = tc
                    src = tc.src_exc
                    graceful = getattr(src, 'clean', False)
                    if not graceful:
                        log_at = logger.error if tc.loglevel == 'error' else logger.runtime
                        log_at(str(tc))
                    break

                # inline, not a helper coroutine: this is the hot path
                try:
                    msg_type = type(msg)
                    if msg_type is Start:
                        if await _handle_start(actor, chan, msg):
                            break
                    elif msg_type is Error and msg.cid is None:
                        # the peer's runtime failed (e.g. a child that could
                        # not import its modules): every dialog on this
                        # channel ends with that error; whoever supervises
                        # the peer reports it
                        chan._exc = unpack_error(msg, chan)
                        logger.runtime(f'Peer runtime failed: {chan._exc!r}')
                        break
                    else:
                        ctx = contexts.get((peer_uid, msg.cid))
                        if ctx is None:
                            # a late `CancelAck`: its requester gave up
                            if msg_type is not Stop and msg_type is not CancelAck:
                                logger.warning(
                                    f'Dropping {msg_type.__name__} for unknown '
                                    f'dialog {msg.cid} from {chan!r}'
                                )
                        elif not ctx._deliver_msg(msg):
                            if ctx._allow_overruns:
                                await ctx._deliver_blocking(msg)
                            else:
                                await _report_overrun(actor, chan, ctx)
                        elif ctx._send_chan._state.data:
                            # its reader lags: let it run before we deliver
                            # the next message of a burst (no wait, one
                            # scheduler pass)
                            await trio.lowlevel.cancel_shielded_checkpoint()
                except Exception as err:
                    # one message must never end the loop, nor the actor
                    await _on_dispatch_error(actor, chan, msg, err)
        finally:
            lost = lost or TransportClosed(f'Message loop for {chan!r} ended')
            for ctx in list(contexts.values()):
                if ctx.chan is chan:
                    ctx._on_chan_lost(lost)
            # tasks that peer started can no longer report to it
            for (task_chan, _cid), task in list(actor._rpc_tasks.items()):
                if task_chan is chan:
                    task.ctx._scope.cancel()
            await _wait_for_owed_acks(chan)
    return graceful

