'''
Serving one channel: the per-channel message loop, and the task that runs
one remote procedure call.

The loop's cost per message is a decode (in the channel) and a dispatch on
the message's type: a reply is pushed into its dialog's feeder channel, a
request becomes a task in the actor's service nursery.
'''
from __future__ import annotations

import inspect
from typing import (
    Any,
    Callable,
    TYPE_CHECKING,
)

import trio

from tractor import log
from tractor._context import Context
from tractor._exceptions import (
    ModuleNotExposed,
    MsgTypeError,
    TransportClosed,
    pack_error,
    unpack_error,
)
from tractor.ipc import Channel
from tractor.msg.types import (
    CancelAck,
    Error,
    Return,
    Start,
    StartAck,
    Stop,
)

if TYPE_CHECKING:
    from ._runtime import Actor

logger = log.get_logger()


class RpcTask:
    '''Bookkeeping for one running remote procedure call.'''
    __slots__ = ('ctx', 'func', 'done')

    def __init__(self, ctx: Context, func: Callable) -> None:
        self.ctx = ctx
        self.func = func
        self.done = trio.Event()

    # `actor._rpc_tasks` values unpack like upstream's `(ctx, func, done)`
    def __iter__(self):
        return iter((self.ctx, self.func, self.done))


async def _ship_error(
    actor: Actor,
    chan: Channel,
    err: BaseException,
    cid: str|None,
) -> None:
    '''Send `err` boxed to the peer; a dead channel is not a new failure.'''
    try:
        await chan.send(pack_error(err, cid=cid, own_uid=actor.aid.uid))
    except TransportClosed:
        logger.runtime(f'Could not ship {type(err).__name__} to {chan!r}: channel closed')


async def _invoke(
    actor: Actor,
    cid: str,
    chan: Channel,
    func: Callable,
    kwargs: dict[str, Any],
    task: RpcTask,
) -> None:
    '''Run one requested function and send its outcome to the caller.'''
    ctx = task.ctx
    try:
        with ctx._scope:
            try:
                if not inspect.iscoroutinefunction(func):
                    raise TypeError(
                        f'{func.__qualname__!r} is not an `async def` function '
                        'and can not be run remotely'
                    )
                coro = func(**kwargs)
                try:
                    await chan.send(StartAck(cid=cid, functype='asyncfunc'))
                except TransportClosed:
                    logger.runtime(f'Caller of {func.__name__!r} is gone; running it anyway')
                result = await coro
                try:
                    await chan.send(Return(cid=cid, pld=result))
                except MsgTypeError as mte:
                    await _ship_error(actor, chan, mte, cid)
                except TransportClosed:
                    logger.runtime(f'Caller of {func.__name__!r} is gone; result dropped')
            except trio.Cancelled:
                raise
            except KeyboardInterrupt as kbi:
                await _ship_error(actor, chan, kbi, cid)
                raise
            except BaseException as err:
                if isinstance(err, BaseExceptionGroup) and err.split(trio.Cancelled)[1] is None:
                    raise
                logger.runtime(f'RPC task {func.__name__!r} failed with {err!r}')
                await _ship_error(actor, chan, err, cid)
    finally:
        actor._rpc_tasks.pop((chan, cid), None)
        if not actor._rpc_tasks:
            actor._ongoing_rpc_tasks.set()
        task.done.set()


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
        # runtime cancel endpoints run inline, shielded, and are acked
        # only once done
        with trio.CancelScope(shield=True):
            try:
                await chan.send(StartAck(cid=cid, functype='asyncfunc'))
                if msg.func == 'cancel':
                    result = await actor.cancel(chan)
                else:
                    result = await actor._cancel_task(
                        msg.kwargs['cid'], chan, requesting_aid=chan.aid,
                    )
                await chan.send(CancelAck(cid=cid, pld=bool(result)))
            except TransportClosed:
                logger.runtime(f'Requester of {msg.func!r} left before the ack')
        return msg.func == 'cancel'

    try:
        func = _resolve_target(actor, msg)
    except (ModuleNotExposed, AttributeError) as err:
        await _ship_error(actor, chan, err, cid)
        return False

    ctx = Context(chan, cid, side='child', nsf=f'{msg.ns}:{msg.func}')
    ctx._scope = trio.CancelScope()
    task = RpcTask(ctx, func)
    actor._rpc_tasks[(chan, cid)] = task
    if actor._ongoing_rpc_tasks.is_set():
        actor._ongoing_rpc_tasks = trio.Event()
    actor._service_tn.start_soon(
        _invoke, actor, cid, chan, func, msg.kwargs, task,
        name=msg.func,
    )
    return False


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
                    msg = await chan.recv()
                except MsgTypeError as mte:
                    logger.error(f'Dropping an invalid msg from {chan!r}:\n{mte.message}')
                    continue
                except TransportClosed as tc:
                    lost = tc
                    src = tc.src_exc
                    graceful = getattr(src, 'clean', False)
                    if not graceful:
                        log_at = logger.error if tc.loglevel == 'error' else logger.runtime
                        log_at(str(tc))
                    break

                msg_type = type(msg)
                if msg_type is Start:
                    if await _handle_start(actor, chan, msg):
                        break
                elif msg_type is Error and msg.cid is None:
                    # the peer's runtime failed (e.g. a child that could not
                    # import its modules): every dialog on this channel
                    # ends with that error; whoever supervises the peer
                    # reports it
                    chan._exc = unpack_error(msg, chan)
                    logger.runtime(f'Peer runtime failed: {chan._exc!r}')
                    break
                else:
                    ctx = contexts.get((peer_uid, msg.cid))
                    if ctx is None:
                        if msg_type is not Stop:
                            logger.warning(
                                f'Dropping {msg_type.__name__} for unknown dialog '
                                f'{msg.cid} from {chan!r}'
                            )
                    elif not ctx._deliver_msg(msg):
                        logger.warning(f'Dialog {ctx!r} is not accepting messages; dropped one')
        finally:
            lost = lost or TransportClosed(f'Message loop for {chan!r} ended')
            for ctx in list(contexts.values()):
                if ctx.chan is chan:
                    ctx._on_chan_lost(lost)
            # tasks that peer started can no longer report to it
            for (task_chan, _cid), task in list(actor._rpc_tasks.items()):
                if task_chan is chan:
                    task.ctx._scope.cancel()
    return graceful

