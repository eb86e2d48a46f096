'''
`MsgStream`: the message stream of one context, in both directions.

Items travel as `Yield` messages; each side's stream exit sends exactly
one `Stop`. A stream is one-shot: once closed it can not be reopened.
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
from tractor._exceptions import (
    MessagingError,
    StreamOverrun,
    TransportClosed,
)
from tractor.msg.types import (
    Error,
    Return,
    Stop,
    Yield,
)
from tractor.trionics._broadcast import (
    BroadcastReceiver,
    broadcast_receiver,
)

if TYPE_CHECKING:
    from tractor._context import Context


class OverrunGap:
    '''
    Queued where stream items were dropped because this side's buffer
    overflowed; the reader gets a `StreamOverrun` at that point.
    '''
    __slots__ = ('why',)

    def __init__(self, why: str) -> None:
        self.why = why

logger = log.get_logger()

# no value was received
_NO_VALUE = object()


class MsgStream(trio.abc.Channel):
    '''Send and receive the payloads of one dialog.'''

    def __init__(
        self,
        ctx: Context,
        rx_chan: trio.MemoryReceiveChannel,
    ) -> None:
        self._ctx = ctx
        self._rx_chan = rx_chan
        self._eoc: trio.EndOfChannel|bool = False
        self._closed: BaseException|bool = False
        self._broadcaster: BroadcastReceiver|None = None
        # a task is in a `receive()` straight from the feeder
        self._reading_direct: bool = False
        # the broadcast puller's place, held for that receive when the
        # first subscriber arrived during it
        self._claimed_pull: trio.Event|None = None

    @property
    def ctx(self) -> Context:
        return self._ctx

    @property
    def chan(self):
        return self._ctx.chan

    @property
    def closed(self) -> bool:
        return bool(self._eoc or self._closed or self._ctx._send_chan._closed)

    def __repr__(self) -> str:
        return f'<MsgStream of {self._ctx!r}>'

    # -- receiving --
    def _raise_ended(self) -> None:
        '''After end/close, a stored remote error wins over end-of-channel.'''
        self._ctx.maybe_raise()
        if self._eoc:
            raise self._eoc
        raise trio.ClosedResourceError(f'{self!r} was closed')

    def _handle(self, msg: Any) -> Any:
        ctx = self._ctx
        msg_type = type(msg)
        if msg_type is Yield:
            return ctx._pld_rx.decode_pld(msg)
        if msg_type is Stop:
            self._eoc = trio.EndOfChannel('the peer ended the stream')
        elif msg_type is Return:
            ctx._result = ctx._raise_or_pld(msg)
            self._eoc = trio.EndOfChannel('the peer returned its final result')
        elif msg_type is Error:
            ctx._raise_or_pld(msg)
        elif msg_type is OverrunGap:
            raise StreamOverrun(msg.why, boxed_type=StreamOverrun)
        else:
            raise MessagingError(f'Unexpected {msg_type.__name__} in {self!r}: {msg!r}')
        raise self._eoc

    async def _receive_direct(self) -> Any:
        if self._eoc or self._closed:
            self._raise_ended()
        try:
            msg = await self._ctx._recv_msg()
        except TransportClosed:
            self._ctx.maybe_raise()
            raise
        return self._handle(msg)

    async def receive(self, hide_tb: bool = False) -> Any:
        '''The next payload; `trio.EndOfChannel` once the peer ended the stream.'''
        if self._broadcaster is not None:
            return await self._broadcaster.receive()
        if self._reading_direct:
            # a second direct reader competes, as with any trio channel
            return await self._receive_direct()
        self._reading_direct = True
        try:
            value = await self._receive_direct()
        except trio.EndOfChannel:
            self._end_direct_read(eoc=True)
            raise
        except BaseException:
            self._end_direct_read()
            raise
        self._end_direct_read(value)
        return value

    def _end_direct_read(self, value: Any = _NO_VALUE, eoc: bool = False) -> None:
        '''
        A direct receive ended. If the first subscriber arrived meanwhile,
        it waited for this receive instead of competing with it: hand it
        (and every other subscriber) what this receive got.
        '''
        self._reading_direct = False
        claimed = self._claimed_pull
        if claimed is not None:
            self._claimed_pull = None
            if value is not _NO_VALUE:
                self._broadcaster._publish(value)
            self._broadcaster._end_claim(claimed, eoc=eoc)

    def receive_nowait(self, expect_msg: type = Yield) -> Any:
        if self._eoc or self._closed:
            self._raise_ended()
        return self._handle(self._rx_chan.receive_nowait())

    # -- sending --
    async def send(self, data: Any, hide_tb: bool = True) -> None:
        '''Send one item to the peer (`hide_tb`: keep this frame out of tracebacks).'''
        __tracebackhide__ = hide_tb
        self._ctx.maybe_raise()
        if self._eoc:
            raise self._eoc
        if self._closed:
            raise trio.ClosedResourceError(f'{self!r} was closed')
        await self._ctx.chan.send(Yield(cid=self._ctx.cid, pld=data))

    # -- closing --
    async def aclose(self) -> list[Any]:
        '''
        End our side: take what is already queued (without blocking),
        tell the peer with one `Stop`, and refuse further sends.
        '''
        if self._closed:
            return []
        self._closed = True
        drained: list[Any] = []
        if not self._eoc:
            try:
                while True:
                    drained.append(self._handle(self._rx_chan.receive_nowait()))
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                pass
            except BaseException as err:
                # a remote error stays recorded on the ctx for its owner
                logger.runtime(f'{self!r} closed with a pending error: {err!r}')
        self._eoc = self._eoc or trio.EndOfChannel('the stream was closed locally')
        ctx = self._ctx
        if ctx.chan.connected():
            with trio.CancelScope(shield=True):
                try:
                    await ctx.send_stop()
                except TransportClosed:
                    pass
        return drained

    # -- fan-out --
    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[BroadcastReceiver]:
        '''
        A broadcast copy of this stream for one of several local consumer
        tasks; each subscriber sees every item received after it joined.
        '''
        if self._broadcaster is None:
            self._broadcaster = broadcast_receiver(
                self,
                self._ctx._send_chan._state.max_buffer_size,
                receive_afunc=self._receive_direct,
            )
            if self._reading_direct:
                # a task already waits in `receive()`: what it gets is the
                # subscribers' first value too (they would otherwise
                # compete with it for the feeder and split the values)
                self._claimed_pull = self._broadcaster._claim_pull()
        async with self._broadcaster.subscribe() as sub:
            sub.send = self.send
            yield sub


def stream(func: Callable) -> Callable:
    '''
    Legacy one-way streaming: mark an async function that streams by
    calling `ctx.send_yield()` (or `stream.send()`).
    '''
    params = inspect.signature(func).parameters
    if not ({'ctx', 'stream', 'to_trio'} & set(params)):
        raise TypeError(
            f'{func.__name__} must be `ctx: tractor.Context` '
            '(or declare a `stream` parameter) to be a `@tractor.stream` function'
        )
    warnings.warn(
        '`@tractor.stream decorated funcs are deprecated: use `@tractor.context` '
        'with `Context.open_stream()`'
        + (' (and name the param `stream`, not `ctx`)'
           if 'ctx' in params and 'stream' not in params else ''),
        DeprecationWarning,
        stacklevel=2,
    )
    func._tractor_stream_function = True
    return func
