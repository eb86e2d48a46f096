'''
Broadcast fan-out of one receive channel to several local consumer tasks.

One underlying `receive()` runs at a time; the task that pulled a value
pushes it into a shared ring buffer from which every other subscriber reads
it. The fastest consumer never loses a value; one that falls more than the
buffer behind gets `Lagged` once and resumes at the oldest value kept.
'''
from __future__ import annotations

from collections import deque
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Protocol,
)

import trio

from tractor import log

logger = log.get_logger()


class AsyncReceiver(Protocol):
    async def receive(self) -> Any: ...


class Lagged(trio.TooSlowError):
    '''A subscriber fell behind by more than the buffer holds.'''


class BroadcastState:
    '''What all subscribers of one underlying channel share.'''

    def __init__(self, maxlen: int) -> None:
        # newest value at the left
        self.queue: deque = deque(maxlen=maxlen)
        self.maxlen = maxlen
        # subscriber key -> index into `queue` of its next value (-1: none)
        self.subs: dict[int, int] = {}
        # the subscriber currently pulling from the underlying channel
        self.recv_ready: tuple[int, trio.Event]|None = None
        self.eoc: bool = False
        self.cancelled: dict[int, trio.lowlevel.Task] = {}


class BroadcastReceiver(trio.abc.ReceiveChannel):
    '''One subscriber's view of a broadcast channel.'''

    def __init__(
        self,
        rx_chan: AsyncReceiver,
        state: BroadcastState,
        receive_afunc: Callable[[], Awaitable[Any]]|None = None,
        raise_on_lag: bool = True,
    ) -> None:
        self._rx = rx_chan
        self._state = state
        self._recv = receive_afunc or rx_chan.receive
        self._raise_on_lag = raise_on_lag
        self._closed = False
        self.key = id(self)
        state.subs[self.key] = -1

    def receive_nowait(self) -> Any:
        if self._closed:
            raise trio.ClosedResourceError
        state = self._state
        idx = state.subs[self.key]
        if idx < 0:
            raise trio.WouldBlock
        if idx >= len(state.queue):
            # the values we had not read yet fell off the end of the ring
            state.subs[self.key] = len(state.queue) - 1
            message = f'{self!r} lagged {idx + 1 - len(state.queue)} value(s) behind'
            if self._raise_on_lag:
                raise Lagged(message)
            logger.warning(message)
            return self.receive_nowait()
        state.subs[self.key] = idx - 1
        return state.queue[idx]

    async def receive(self) -> Any:
        state = self._state
        while True:
            try:
                value = self.receive_nowait()
            except trio.WouldBlock:
                pass
            else:
                await trio.lowlevel.checkpoint()
                return value
            if state.eoc:
                raise trio.EndOfChannel
            if state.recv_ready is not None:
                # somebody else is pulling: wait for the value they get
                await state.recv_ready[1].wait()
                continue
            return await self._pull()

    async def _pull(self) -> Any:
        state = self._state
        event = trio.Event()
        state.recv_ready = (self.key, event)
        try:
            value = await self._recv()
        except trio.EndOfChannel:
            state.eoc = True
            raise
        finally:
            # on cancellation another waiting subscriber takes over
            state.recv_ready = None
            event.set()
        self._publish(value)
        return value

    def _publish(self, value: Any) -> None:
        '''Queue `value`, pulled by this subscriber, for all the others.'''
        state = self._state
        state.queue.appendleft(value)
        for key, idx in state.subs.items():
            if key != self.key:
                state.subs[key] = idx + 1

    def _claim_pull(self) -> trio.Event:
        '''
        Take the puller's place on behalf of a receive from the underlying
        channel that is already under way outside the broadcast (it began
        before the broadcast existed): the other subscribers wait for it
        instead of competing with it. Its owner ends the claim with
        `_end_claim()`, after `_publish()`ing what it got.
        '''
        event = trio.Event()
        self._state.recv_ready = (self.key, event)
        return event

    def _end_claim(self, event: trio.Event, eoc: bool = False) -> None:
        state = self._state
        if eoc:
            state.eoc = True
        if state.recv_ready is not None and state.recv_ready[1] is event:
            state.recv_ready = None
        event.set()

    @asynccontextmanager
    async def subscribe(
        self,
        raise_on_lag: bool = True,
    ) -> AsyncIterator[BroadcastReceiver]:
        '''A new subscriber sharing this one's underlying channel.'''
        if self._closed:
            raise trio.ClosedResourceError('subscribe() on a closed receiver')
        sub = BroadcastReceiver(
            self._rx,
            self._state,
            receive_afunc=self._recv,
            raise_on_lag=raise_on_lag,
        )
        try:
            yield sub
        finally:
            await sub.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._state.subs.pop(self.key, None)

    def __repr__(self) -> str:
        return f'<BroadcastReceiver {self.key:x}>'


def broadcast_receiver(
    recv_chan: AsyncReceiver,
    max_buffer_size: int,
    receive_afunc: Callable[[], Awaitable[Any]]|None = None,
    raise_on_lag: bool = True,
) -> BroadcastReceiver:
    return BroadcastReceiver(
        recv_chan,
        BroadcastState(max_buffer_size),
        receive_afunc=receive_afunc,
        raise_on_lag=raise_on_lag,
    )
