'''
`Context`: one side of an IPC dialog with a remote task, keyed by `cid`.

The channel's message loop hands every message addressed to the dialog to
`Context._deliver_msg()`, which never blocks: payload messages go into the
context's bounded feeder channel, and an `Error` is also recorded and
cancels the context's scope so its owner wakes up wherever it is blocked.

The parent side (`Portal.open_context()`) and the child side (the runtime
running a `@context` function) share this class; `side` says which.
'''
from __future__ import annotations

import inspect
import warnings
from collections import deque
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
    Callable,
    TYPE_CHECKING,
)

import trio

from tractor import log
from tractor._streaming import (
    MsgStream,
    OverrunGap,
)
from tractor._exceptions import (
    ContextCancelled,
    MsgTypeError,
    RemoteActorError,
    StreamOverrun,
    StreamReopenError,
    TransportClosed,
    unpack_error,
)
from tractor.msg._codec import mk_dec
from tractor.msg._ops import PldRx
from tractor.msg.types import (
    Error,
    Return,
    Started,
    Stop,
    Yield,
)
from tractor.runtime import _state

if TYPE_CHECKING:
    from tractor.ipc import Channel
    from tractor.runtime._portal import Portal

logger = log.get_logger()

# overflow buffered for a side that allows overruns, beyond its feeder
OVERFLOW_MAXLEN: int = 616
# room left above it for control messages, which are never overrun
OVERFLOW_HARD_MAXLEN: int = OVERFLOW_MAXLEN + 64
# the parent drains at most this many stream items while waiting for the
# final result after it has left its stream (the child may keep streaming)
MAX_DRAINED_YIELDS: int = 6


class Unresolved:
    '''Sentinel: the dialog's outcome is not known yet.'''


class Context:
    '''One side of a dialog with a remote task; made by the runtime.'''

    def __init__(
        self,
        chan: Channel,
        cid: str,
        *,
        side: str,
        portal: Portal|None = None,
        msg_buffer_size: int = 2**6,
        nsf: str = '',
        allow_overruns: bool = False,
    ) -> None:
        self.chan = chan
        self.cid = cid
        self.side = side
        self.portal = portal
        self._nsf = nsf
        self._actor = _state.current_actor(err_on_no_runtime=False)
        # the feeder (`_send_chan`, `_rx_chan`) is made on first use: the
        # callee side of a plain call never receives on it
        self._msg_buffer_size = msg_buffer_size
        self._pld_rx = PldRx()
        self._scope: trio.CancelScope|None = None
        self._scope_nursery: trio.Nursery|None = None
        self._remote_error: BaseException|None = None
        self._local_error: BaseException|None = None
        self._result: Any = Unresolved
        # a cancel request went out while the peer's outcome was unknown,
        # so a `ContextCancelled` naming us is its acknowledgement
        self._cancel_called: bool = False
        # one went out after the peer had reported its outcome
        self._cancel_called_after_outcome: bool = False
        self._canceller: tuple[str, str]|None = None
        self._cancel_msg: Any = None
        self._functype: str|None = None
        self._chan_lost: TransportClosed|None = None
        self._started_called: bool = False
        self._stream: MsgStream|None = None
        self._stream_opened: bool = False
        self._allow_overruns = allow_overruns
        # beyond a full feeder: the stream items of a side allowing
        # overruns (up to OVERFLOW_MAXLEN) and control messages (up to
        # OVERFLOW_HARD_MAXLEN in all)
        self._overflow: deque = deque()
        self._overflow_pump: trio.Event|None = None
        self._overrun_reported: bool = False
        self._enter_debugger_on_cancel: bool = True
        self.parent_task: trio.lowlevel.Task|None = None

    def __getattr__(self, name: str) -> Any:
        # only reached while the feeder does not exist yet
        if name in ('_send_chan', '_rx_chan'):
            self._send_chan, self._rx_chan = trio.open_memory_channel(
                self._msg_buffer_size,
            )
            return getattr(self, name)
        raise AttributeError(
            f'{type(self).__name__!r} object has no attribute {name!r}'
        )

    # -- identity --
    @property
    def peer_side(self) -> str:
        return 'child' if self.side == 'parent' else 'parent'

    @property
    def pld_rx(self) -> PldRx:
        return self._pld_rx

    @property
    def dst_maddr(self) -> str:
        return self.chan.maddr

    def _own_uid(self) -> tuple[str, str]|None:
        return self._actor.aid.uid if self._actor is not None else None

    def __repr__(self) -> str:
        return f'<Context {self.side} cid={self.cid[:8]} {self._nsf} {self.repr_state}>'

    def pformat(self) -> str:
        '''
        A multi-line description of this side of the dialog for logs and
        debugging: who talks to whom about what, its state, and its
        outcome or error so far.
        '''
        peer = self.chan.aid.reprol() if self.chan.aid else '<no handshake>'
        outcome = self.outcome
        lines = [
            '<Context(',
            f'  side={self.side!r}, peer={peer!r}, cid={self.cid!r},',
            f'  nsf={self._nsf!r}, state={self.repr_state!r},',
            f'  cancel_called={self.cancel_called}, cancel_acked={self.cancel_acked},'
            f' canceller={self.canceller!r},',
            f'  stream={"opened" if self._stream_opened else "none"},'
            f' allow_overruns={self._allow_overruns},'
            f' queued={self._send_chan.statistics().current_buffer_used + len(self._overflow)},',
        ]
        if outcome is not Unresolved:
            lines.append(f'  outcome={outcome!r},')
        lines.append(')>')
        return '\n'.join(lines)

    # -- state --
    @property
    def cancel_called(self) -> bool:
        '''Whether this side asked for the dialog to be cancelled.'''
        return self._cancel_called or self._cancel_called_after_outcome

    def _note_cancel_request(self) -> None:
        if self._remote_error is None and self._result is Unresolved:
            self._cancel_called = True
        else:
            self._cancel_called_after_outcome = True

    @property
    def cancel_acked(self) -> bool:
        err = self._remote_error
        return (
            self._cancel_called
            and isinstance(err, ContextCancelled)
            and err.canceller == self._own_uid()
            and err.src_uid == (self.chan.aid.uid if self.chan.aid else None)
        )

    @property
    def cancelled_caught(self) -> bool:
        return bool(self._scope and self._scope.cancelled_caught)

    @property
    def canceller(self) -> tuple[str, str]|None:
        '''Who cancelled this side: us (acked self-cancel), else the peer.'''
        if self._is_self_cancel_ack(self._remote_error):
            return self._own_uid()
        if isinstance(self._remote_error, RemoteActorError):
            return self._remote_error.src_uid
        return self._canceller

    @property
    def maybe_error(self) -> BaseException|None:
        if isinstance(self._remote_error, RemoteActorError):
            return self._remote_error
        return self._local_error or self._remote_error

    @property
    def outcome(self) -> Any:
        return self.maybe_error or self._result

    @property
    def has_outcome(self) -> bool:
        return self.maybe_error is not None or self._result is not Unresolved

    def _final_result_is_set(self) -> bool:
        return self._result is not Unresolved

    @property
    def repr_state(self) -> str:
        if self._final_result_is_set():
            return 'result-returned'
        err = self._remote_error
        if isinstance(err, ContextCancelled):
            if self._is_self_cancel_ack(err):
                return 'self-cancelled'
            return 'peer-cancelled' if err.canceller == err.src_uid else 'actor-cancelled'
        if err is not None or self._local_error is not None:
            return 'errored'
        if self._stream is not None:
            return 'streaming-finished' if self._stream.closed else 'streaming'
        if self._started_called or self._stream_opened:
            return 'started'
        return 'pre-started' if self.side == 'child' else 'syncing-to-child'

    def _is_self_cancel_ack(self, err: BaseException|None) -> bool:
        return (
            self._cancel_called
            and isinstance(err, ContextCancelled)
            and err.canceller == self._own_uid()
        )

    # -- fed by the message loop (never blocks) --
    def _deliver_msg(self, msg: Any) -> bool:
        '''
        Queue `msg` for the dialog's owner. Returns False when the feeder
        is full and this side does not allow overruns (the caller then
        reports an overrun to the sender).
        '''
        if type(msg) is Error:
            self._maybe_cancel_and_set_remote_error(unpack_error(msg, self.chan), msg)
        try:
            if self._overflow:
                # keep the order: queue behind what is already waiting
                raise trio.WouldBlock
            self._send_chan.send_nowait(msg)
            return True
        except trio.WouldBlock:
            if type(msg) is not Yield and len(self._overflow) < OVERFLOW_HARD_MAXLEN:
                # control messages (Stop, Return, Error) are not dropped;
                # a dialog has a handful, so only a broken peer hits the cap
                self._overflow.append(msg)
                self._start_overflow_pump()
                return True
            if self._allow_overruns:
                if len(self._overflow) < OVERFLOW_MAXLEN:
                    self._overflow.append(msg)
                    self._start_overflow_pump()
                    return True
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return True

    async def _deliver_blocking(self, msg: Any) -> None:
        '''
        Backpressure for a side that allows overruns once its bounded
        overflow is full too: the channel's loop waits for the owner to
        catch up, keeping the order, instead of dropping or failing.
        '''
        pump = self._overflow_pump
        if pump is not None:
            await pump.wait()
        try:
            await self._send_chan.send(msg)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def _mark_overrun_gap(self, why: str) -> None:
        '''Queue, behind what was kept, the point where items were dropped.'''
        self._overflow.append(OverrunGap(why))
        self._start_overflow_pump()

    def _start_overflow_pump(self) -> None:
        if self._overflow_pump is not None or self._scope_nursery is None:
            return
        self._overflow_pump = trio.Event()
        self._scope_nursery.start_soon(self._pump_overflow)

    async def _pump_overflow(self) -> None:
        '''Feed buffered overflow into the feeder as the owner reads.'''
        try:
            while self._overflow:
                try:
                    await self._send_chan.send(self._overflow.popleft())
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    return
        finally:
            pump, self._overflow_pump = self._overflow_pump, None
            if pump is not None:
                pump.set()

    def _maybe_cancel_and_set_remote_error(
        self,
        error: BaseException,
        msg: Any = None,
    ) -> None:
        '''
        Record a remote error and cancel our scope so the owning task wakes
        up wherever it is blocked, unless a task is parked reading this
        dialog (then the error is handed to it and raised there).
        '''
        if self._remote_error is None:
            self._remote_error = error
            self._cancel_msg = msg
        if self._scope is None:
            return
        if self._send_chan.statistics().tasks_waiting_receive and not self._overflow:
            # a task is parked reading this dialog: the error is handed
            # straight to it and raised right there
            return
        if self._cancel_called and _is_overrun(error):
            # caused by our own sends after we asked for cancellation
            return
        self._scope.cancel()

    def _on_chan_lost(self, err: TransportClosed) -> None:
        '''The channel died: end the feed so a reader wakes up.'''
        self._chan_lost = err
        self._send_chan.close()

    # -- read by the owning task --
    def _recv_ready(self) -> Any:
        '''
        A message already queued for this dialog, without waiting (and
        without a scheduler pass), else None: for a reader that has just
        waited, e.g. a `Return` that arrived with its `StartAck`.
        '''
        if self._overflow:
            return None
        try:
            return self._rx_chan.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            # `_recv_msg()` waits, or says why the dialog ended
            return None

    async def _recv_msg(self) -> Any:
        if self._overflow and self._overflow_pump is None:
            # no pump task (no nursery for this side): refill inline
            while self._overflow:
                try:
                    self._send_chan.send_nowait(self._overflow[0])
                except (trio.WouldBlock, trio.ClosedResourceError):
                    break
                self._overflow.popleft()
        try:
            return await self._rx_chan.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self.chan._exc is not None:
                self._remote_error = self._remote_error or self.chan._exc
                raise self.chan._exc from None
            if self._remote_error is not None and self.side == 'parent':
                raise self._remote_error from None
            peer = self.chan.aid.reprol() if self.chan.aid else '<unknown>'
            # caused by what broke the transport (the trio/OS error), not
            # by the message loop's own `TransportClosed` wrapping it
            lost = self._chan_lost
            cause = lost.src_exc if lost is not None and lost.src_exc is not None else lost
            raise TransportClosed(
                f'IPC channel to actor {peer} closed while waiting for '
                f'`{self._nsf}` (cid {self.cid})',
                src_exc=cause,
            ) from cause

    def _raise_or_pld(self, msg: Any) -> Any:
        '''The decoded payload of a payload message; raise a boxed `Error`.'''
        if type(msg) is Error:
            err = self._remote_error or unpack_error(msg, self.chan)
            self._remote_error = self._remote_error or err
            raise err
        try:
            return self._pld_rx.decode_pld(msg)
        except MsgTypeError as mte:
            self._remote_error = self._remote_error or mte
            raise

    # -- parent side --
    async def _wait_for_started(self) -> Any:
        '''The value the child passed to `started()` (parent side).'''
        msg = await self._recv_msg()
        if type(msg) is Started:
            return self._raise_or_pld(msg)
        if type(msg) is Return:
            # the child returned without calling `started()`
            self._result = self._raise_or_pld(msg)
            return None
        self._raise_or_pld(msg)
        raise TransportClosed(f'Expected `Started` from {self!r}, got {msg!r}')

    async def wait_for_result(self, hide_tb: bool = True) -> Any:
        '''
        The child's final outcome: its return value, its boxed error
        raised, or (for our own cancel request) the `ContextCancelled`
        returned. Stream messages still in flight are discarded.
        '''
        if self.side != 'parent':
            raise RuntimeError('Only the parent side can wait for the result')
        if self._result is not Unresolved:
            return self._result
        drained = 0
        while self._result is Unresolved:
            err = self._remote_error
            if err is not None:
                if self._is_self_cancel_ack(err):
                    return err
                if not isinstance(err, MsgTypeError) or self._stream is None:
                    raise err
            try:
                msg = self._rx_chan.receive_nowait() if err else await self._recv_msg()
            except trio.WouldBlock:
                raise err from None
            except TransportClosed:
                if self._remote_error is not None:
                    continue
                raise
            msg_type = type(msg)
            if msg_type is Return:
                self._result = self._raise_or_pld(msg)
            elif msg_type is Error:
                try:
                    self._raise_or_pld(msg)
                except ContextCancelled as ctxc:
                    if self._is_self_cancel_ack(ctxc):
                        return ctxc
                    raise
            elif msg_type is Yield:
                drained += 1
                stream = self._stream
                if stream is not None and (
                    stream.closed or self._cancel_called or drained > MAX_DRAINED_YIELDS
                ):
                    # the child keeps streaming after we left: don't hang on it
                    return Unresolved
        return self._result

    async def result(self, *args, **kwargs) -> Any:
        logger.warning('`Context.result()` is deprecated; use `.wait_for_result()`')
        return await self.wait_for_result(*args, **kwargs)

    # -- both sides --
    async def cancel(self, timeout: float = 0.616) -> None:
        '''
        Parent side: ask the peer to cancel the child task (bounded); the
        local task is not cancelled. Child side: cancel our own task.
        '''
        if self.side == 'parent':
            # asked even when the child already reported an outcome, as
            # upstream does: `cancel_called` then says we did (the peer
            # acks at once for a task that is gone, and stops one that a
            # payload we could not decode left running)
            await self._actor.cancel_remote_task(self, timeout=timeout)
        else:
            self._cancel_called = True
            self._canceller = self._own_uid()
            if self._scope is not None:
                self._scope.cancel()

    def maybe_raise(self, hide_tb: bool = True, **kwargs) -> None:
        err = self._remote_error
        if err is not None and not self._is_self_cancel_ack(err):
            raise err

    async def started(
        self,
        value: Any = None,
        validate_pld_spec: bool = True,
        strict_pld_parity: bool = False,
        hide_tb: bool = True,
    ) -> None:
        '''Send the first value to the parent (child side, once).'''
        if self.side != 'child':
            raise RuntimeError('`Context.started()` is for the child side only')
        if self._started_called:
            raise RuntimeError(f'called `.started()` twice on {self!r}')
        if validate_pld_spec:
            roundtripped = self._pld_rx.validate_started(value)
            if strict_pld_parity and roundtripped != value:
                raise MsgTypeError(
                    f'`Started` payload {value!r} does not survive the '
                    f'round trip through its spec (got {roundtripped!r})',
                    boxed_type=MsgTypeError,
                )
        self._started_called = True
        try:
            await self.chan.send(Started(cid=self.cid, pld=value))
        except MsgTypeError as mte:
            cause = mte.__cause__
            if type(cause) is not TypeError:
                raise
            # a value no codec can encode is the encoder's own `TypeError`
            # (as upstream), not a spec violation (`MsgTypeError`, above)
            raise TypeError(
                f'`Context.started()` value {value!r} can not be encoded: {cause}'
            ) from None

    async def send_stop(self) -> None:
        await self.chan.send(Stop(cid=self.cid))

    async def send_yield(self, data: Any) -> None:
        warnings.warn(
            '`Context.send_yield()` is deprecated; use `MsgStream.send()`',
            DeprecationWarning,
            stacklevel=2,
        )
        await self.chan.send(Yield(cid=self.cid, pld=data))

    @asynccontextmanager
    async def open_stream(
        self,
        allow_overruns: bool|None = False,
        msg_buffer_size: int|None = None,
    ) -> AsyncIterator[MsgStream]:
        '''A bidirectional `MsgStream` over this dialog (one per context).'''
        if self._cancel_called:
            if self._remote_error is not None:
                raise self._remote_error
            raise RuntimeError('Stream opened after `Context.cancel()` called')
        if self.side == 'child' and not self._started_called:
            raise RuntimeError(
                '`Context.started()` must be called before opening a stream'
            )
        if self._stream_opened:
            raise StreamReopenError(
                f'A stream was already opened on {self!r}; streams are '
                'one-shot: open a new context for another one'
            )
        if self._send_chan._closed:
            raise trio.ClosedResourceError(f'{self!r} feeder channel is closed')
        self.maybe_raise()
        if allow_overruns:
            self._allow_overruns = True
        if msg_buffer_size is not None:
            self._send_chan._state.max_buffer_size = msg_buffer_size

        self._stream_opened = True
        stream = self._stream = MsgStream(self, self._rx_chan)
        try:
            async with stream:
                yield stream
        except trio.EndOfChannel:
            pass


def _is_overrun(err: BaseException) -> bool:
    return isinstance(err, StreamOverrun) or (
        isinstance(err, RemoteActorError) and err.boxed_type_str == 'StreamOverrun'
    )


def context(
    func: Callable|None = None,
    *,
    pld_spec: Any = Any,
    dec_hook: Callable|None = None,
    enc_hook: Callable|None = None,
) -> Callable:
    '''
    Mark an `async def` as a context endpoint: the runtime passes the
    child-side `Context` in its parameter annotated `tractor.Context`.
    '''
    if func is None:
        return lambda fn: context(
            fn, pld_spec=pld_spec, dec_hook=dec_hook, enc_hook=enc_hook,
        )
    sig = inspect.signature(func, eval_str=True)
    ctx_var_name = None
    for name, param in sig.parameters.items():
        annot = param.annotation
        members = getattr(annot, '__args__', None) or (annot,)
        if any(member is Context for member in members):
            ctx_var_name = name
            break
    if ctx_var_name is None:
        raise TypeError(
            f'{func.__qualname__!r} must declare a parameter annotated '
            '`ctx: tractor.Context` to be a `@tractor.context` endpoint'
        )
    func._tractor_context_meta = {
        'ctx_var_name': ctx_var_name,
        'pld_spec': pld_spec,
        'enc_hook': enc_hook,
        'dec_hook': dec_hook,
        'sig': sig,
    }
    func._tractor_context_function = True
    return func


def _pld_dec_for(func: Callable) -> Any:
    '''The payload decoder a `@context` function's spec asks for, if any.'''
    meta = getattr(func, '_tractor_context_meta', None)
    if not meta or (meta['pld_spec'] is Any and meta['dec_hook'] is None):
        return None
    return mk_dec(meta['pld_spec'], dec_hook=meta['dec_hook'])
