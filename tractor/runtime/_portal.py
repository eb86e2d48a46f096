'''
`Portal`: the caller's handle on a connected peer actor, through which it
runs remote functions and asks the peer to cancel.
'''
from __future__ import annotations

import inspect
import warnings
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
    Callable,
    TYPE_CHECKING,
)

import trio

from tractor import log
from tractor._context import (
    Context,
    Unresolved,
    _pld_dec_for,
)
from tractor._streaming import MsgStream
from tractor._exceptions import (
    ActorTooSlowError,
    ContextCancelled,
    InternalError,
    NoResult,
    TransportClosed,
)
from tractor.ipc import Channel
from tractor.msg._ops import _ctxvar_Context
from tractor.trionics._eg import collapse_eg
from tractor.msg.types import (
    CancelAck,
    Return,
)

from . import (
    _debug_hooks,
    _state,
)
from ._rpc import process_messages

if TYPE_CHECKING:
    from ._runtime import Actor

logger = log.get_logger()


def check_plain_async_fn(func: Callable) -> None:
    '''Only a plain `async def` returning a value can be run remotely.'''
    if (
        not inspect.iscoroutinefunction(func)
        or getattr(func, '_tractor_stream_function', False)
    ):
        raise TypeError(
            f'{func!r} must be a non-streaming async function '
            '(an `async def` that returns a value)'
        )


class Portal:
    '''A connection to a peer actor for running its functions remotely.'''
    cancel_timeout: float = 0.5

    def __init__(self, channel: Channel) -> None:
        self.chan = channel
        # the main task started by `ActorNursery.run_in_actor()`, if any
        self._expect_result_ctx: Context|None = None
        self._final_result: Any = Unresolved
        self._final_error: BaseException|None = None
        self._result_lock = trio.Lock()
        self._streams: set[MsgStream] = set()

    @property
    def channel(self) -> Channel:
        logger.debug('`Portal.channel` is deprecated; use `Portal.chan`')
        return self.chan

    @property
    def actor(self) -> Actor:
        return _state.current_actor()

    def __repr__(self) -> str:
        return f'<Portal to {self.chan!r}>'

    # -- running remote functions --
    async def run(
        self,
        func: str|Callable,
        fn_name: str|None = None,
        **kwargs,
    ) -> Any:
        '''Run `func(**kwargs)` in the peer actor and return its result.'''
        if isinstance(func, str):
            warnings.warn(
                '`Portal.run(namespace: str, funcname: str)` is deprecated; '
                'pass the function object, or use `Portal.run_from_ns()`',
                DeprecationWarning,
                stacklevel=2,
            )
            return await self.run_from_ns(func, fn_name, **kwargs)
        check_plain_async_fn(func)
        return await self.run_from_ns(func.__module__, func.__name__, **kwargs)

    async def run_from_ns(
        self,
        namespace_path: str,
        function_name: str,
        **kwargs,
    ) -> Any:
        '''
        Run `namespace_path:function_name(**kwargs)` in the peer. The
        namespace `'self'` names methods of the peer's `Actor`.
        '''
        return await self._run(namespace_path, function_name, kwargs)

    async def _run(
        self,
        ns: str,
        func: str,
        kwargs: dict[str, Any],
        cancel_on_abort: bool = True,
    ) -> Any:
        actor = self.actor
        ctx = await actor.start_remote_task(self.chan, ns, func, kwargs, portal=self)
        try:
            # a quick function's `Return` often came with its `StartAck`
            msg = ctx._recv_ready()
            if msg is not None:
                return self._take_return(ctx, msg)
            return await self._wait_for_return(ctx)
        except trio.Cancelled:
            if cancel_on_abort:
                # the caller gave up: do not leave the remote task running
                await actor.cancel_remote_task(ctx)
            raise
        finally:
            actor._contexts.pop((ctx.chan.aid.uid, ctx.cid), None)

    async def _wait_for_return(self, ctx: Context) -> Any:
        return self._take_return(ctx, await ctx._recv_msg())

    def _take_return(self, ctx: Context, msg: Any) -> Any:
        if not isinstance(msg, (Return, CancelAck)):
            ctx._raise_or_pld(msg)  # raises an `Error`
            raise InternalError(
                f'Expected `Return` for {ctx!r}, got {type(msg).__name__}'
            )
        ctx._result = ctx._raise_or_pld(msg)
        return ctx._result

    # -- the main task of a `run_in_actor()` child --
    async def wait_for_result(self, hide_tb: bool = True) -> Any:
        '''
        The return value of the main task started by `run_in_actor()`
        (cached), raising its boxed error if it failed.
        '''
        if self._expect_result_ctx is None:
            if self.chan._exc is not None:
                raise self.chan._exc
            logger.warning(
                f'{self!r} has no main task (it was not started by '
                '`run_in_actor()`), so there is no result to wait for'
            )
            return NoResult
        # one reader at a time; the others then see the cached outcome
        async with self._result_lock:
            if self._final_error is not None:
                raise self._final_error
            if self._final_result is Unresolved:
                ctx = self._expect_result_ctx
                try:
                    self._final_result = await self._wait_for_return(ctx)
                except (trio.Cancelled, KeyboardInterrupt):
                    raise
                except BaseException as err:
                    self._final_error = err
                    raise
                finally:
                    if self._final_result is not Unresolved or self._final_error:
                        self.actor._contexts.pop((ctx.chan.aid.uid, ctx.cid), None)
            return self._final_result

    async def result(self, *args, **kwargs) -> Any:
        logger.warning('`Portal.result()` is deprecated; use `.wait_for_result()`')
        return await self.wait_for_result(*args, **kwargs)

    # -- cancellation --
    async def cancel_actor(
        self,
        timeout: float|None = None,
        raise_on_timeout: bool = False,
    ) -> bool:
        '''
        Ask the peer to cancel its whole runtime. Returns whether it
        acknowledged within `timeout` (default `cancel_timeout`).
        '''
        chan = self.chan
        if not chan.connected():
            return False
        chan._cancel_called = True
        timeout = self.cancel_timeout if timeout is None else timeout
        with trio.CancelScope(shield=True) as cs:
            cs.deadline = trio.current_time() + timeout
            try:
                acked = await self._run('self', 'cancel', {}, cancel_on_abort=False)
            except TransportClosed:
                return False
            return bool(acked)
        if raise_on_timeout:
            raise ActorTooSlowError(
                f'{chan.aid.reprol()} did not acknowledge a cancel request '
                f'within {timeout} s'
            )
        return False

    async def _cancel_actor_received(self, timeout: float) -> bool:
        '''
        For a supervisor, which must tell a child busy tearing down its
        own subtree from a stuck one: ask the peer to cancel, raise
        `ActorTooSlowError` unless it *received* the request (its
        `StartAck`, sent before it starts cancelling) within `timeout`,
        then wait for its acknowledgement (sent once it is done) for as
        long as the caller's scope allows. Returns whether it was
        acknowledged (False: the channel ended first).
        '''
        chan = self.chan
        if not chan.connected():
            return False
        chan._cancel_called = True
        actor = self.actor
        try:
            with trio.fail_after(timeout):
                ctx = await actor.start_remote_task(chan, 'self', 'cancel', {}, portal=self)
        except trio.TooSlowError:
            raise ActorTooSlowError(
                f'{chan.aid.reprol()} did not receive a cancel request within {timeout} s'
            ) from None
        except TransportClosed:
            return False
        try:
            return bool(await self._wait_for_return(ctx))
        except TransportClosed:
            return False
        finally:
            actor._contexts.pop((chan.aid.uid, ctx.cid), None)

    # -- dialogs --
    @asynccontextmanager
    async def open_context(
        self,
        func: Callable,
        allow_overruns: bool = False,
        hide_tb: bool = True,
        **kwargs,
    ) -> AsyncIterator[tuple[Context, Any]]:
        '''
        Start the `@tractor.context` function `func(**kwargs)` in the peer
        and yield `(ctx, first)`, `first` being what it passed to
        `ctx.started()`. On exit: a clean block waits for the child's
        result; an erroring one cancels the child and re-raises.
        '''
        if (
            getattr(func, '_tractor_context_meta', None) is None
            or not inspect.iscoroutinefunction(func)
        ):
            raise TypeError(
                f'{func!r} must be an `async def` decorated with `@tractor.context`'
            )
        actor = self.actor
        if self.chan.aid.uid == actor.aid.uid:
            raise RuntimeError(
                f'Invalid Operation: {actor!r} can not open a context with itself'
            )
        ctx = await actor.start_remote_task(
            self.chan,
            func.__module__,
            func.__name__,
            kwargs,
            portal=self,
            allow_overruns=allow_overruns,
        )
        key = (self.chan.aid.uid, ctx.cid)
        if ctx._functype != 'context':
            await actor.cancel_remote_task(ctx)
            actor._contexts.pop(key, None)
            raise TypeError(
                f'{func.__name__!r} is not a `@tractor.context` function in the peer '
                f'(it runs as {ctx._functype!r})'
            )
        dec = _pld_dec_for(func)
        if dec is not None:
            ctx._pld_rx._pld_dec = dec
        ctx.parent_task = trio.lowlevel.current_task()
        token = _ctxvar_Context.set(ctx)
        try:
            async with collapse_eg(), trio.open_nursery() as tn:
                ctx._scope = tn.cancel_scope
                ctx._scope_nursery = tn
                first = await ctx._wait_for_started()
                if ctx._remote_error is not None and not ctx._scope.cancel_called:
                    # it arrived (right behind `Started`) before there was
                    # a scope to cancel: wake the block at its first await
                    ctx._maybe_cancel_and_set_remote_error(ctx._remote_error)
                try:
                    yield ctx, first
                except ContextCancelled as ctxc:
                    if not ctx._is_self_cancel_ack(ctxc):
                        ctx._local_error = ctxc
                        raise
                except BaseException as err:
                    ctx._local_error = err
                    if (hooks := _debug_hooks.installed) is not None:
                        # debug mode: not under a REPL (the child's) in use
                        await hooks.before_ctx_cancel(ctx)
                    try:
                        await ctx.cancel()
                    except TransportClosed as tc:
                        logger.runtime(f'Could not cancel {ctx!r}: {tc}')
                    raise
                else:
                    if ctx.chan.connected() or ctx._remote_error is not None:
                        try:
                            outcome = await ctx.wait_for_result()
                        except BaseException as err:
                            ctx._local_error = ctx._local_error or err
                            raise
                        if outcome is Unresolved:
                            # the child kept streaming after we left: end it
                            await ctx.cancel()
            if tn.cancel_scope.cancelled_caught:
                # our scope was cancelled because the child's outcome arrived
                ctx.maybe_raise()
        finally:
            _ctxvar_Context.reset(token)
            ctx._send_chan.close()
            actor._contexts.pop(key, None)

    @asynccontextmanager
    async def open_stream_from(
        self,
        async_gen_func: Callable,
        **kwargs,
    ) -> AsyncIterator[MsgStream]:
        '''
        Legacy one-way streaming: run an async generator (or `@stream`
        function) in the peer and receive what it yields. Leaving the block
        cancels the remote task.
        '''
        warnings.warn(
            '`Portal.open_stream_from()` is deprecated; use '
            '`Portal.open_context()` and `Context.open_stream()`',
            DeprecationWarning,
            stacklevel=3,
        )
        if not (
            inspect.isasyncgenfunction(async_gen_func)
            or getattr(async_gen_func, '_tractor_stream_function', False)
        ):
            raise TypeError(f'{async_gen_func!r} must be an async generator function')
        actor = self.actor
        ctx = await actor.start_remote_task(
            self.chan,
            async_gen_func.__module__,
            async_gen_func.__name__,
            kwargs,
            portal=self,
        )
        stream = ctx._stream = MsgStream(ctx, ctx._rx_chan)
        self._streams.add(stream)
        try:
            yield stream
        finally:
            self._streams.discard(stream)
            with trio.CancelScope(shield=True):
                await ctx.cancel()
            actor._contexts.pop((self.chan.aid.uid, ctx.cid), None)

    async def aclose(self) -> None:
        '''Close the legacy streams opened through this portal.'''
        for stream in list(self._streams):
            await stream.aclose()


class LocalPortal:
    '''
    A portal to this very actor (used when an actor asks itself, e.g. a
    registrar looking itself up): calls happen directly, without IPC.
    '''
    def __init__(self, actor: Actor, channel: Channel|None = None) -> None:
        self.actor = actor
        self.chan = channel

    @property
    def channel(self) -> Channel|None:
        '''The channel it was made for (upstream's name for `chan`).'''
        return self.chan

    async def run_from_ns(
        self,
        ns: str,
        func_name: str,
        **kwargs,
    ) -> Any:
        if ns == 'self':
            target = getattr(self.actor, func_name)
        else:
            target = getattr(self.actor._mods[ns], func_name)
        return await target(**kwargs)


@asynccontextmanager
async def open_portal(
    channel: Channel,
    tn: trio.Nursery|None = None,
    start_msg_loop: bool = True,
    shield: bool = False,
) -> AsyncIterator[Portal]:
    '''
    A `Portal` over `channel` (handshaking first if needed) with a message
    loop serving it for the duration of the block.
    '''
    actor = _state.current_actor()
    if channel.aid is None:
        await channel._do_handshake(actor.aid)
    async with trio.open_nursery() as own_tn:
        tn = tn or own_tn
        loop_cs: trio.CancelScope|None = None
        if start_msg_loop:
            loop_cs = await tn.start(
                process_messages,
                actor,
                channel,
                shield,
            )
        try:
            yield Portal(channel)
        finally:
            if loop_cs is not None:
                loop_cs.cancel()
