'''
The IPC server every actor runs: it listens on the actor's accept
addresses, performs the identity handshake on each new connection, keeps
the table of connected peers and hands each peer's `Channel` to the
runtime's message loop.

The server knows nothing about RPC: the runtime passes in the coroutine that
serves a connected peer.
'''
from __future__ import annotations

from collections import defaultdict
from typing import (
    Awaitable,
    Callable,
)

import trio

from tractor import log
from tractor._exceptions import TransportClosed
from tractor.msg.types import Aid

from . import _tcp, _uds
from ._addr import Address
from ._chan import Channel

logger = log.get_logger()

HANDSHAKE_TIMEOUT: float = 10.0

_listen_for: dict[type, Callable] = {
    _tcp.TCPAddress: _tcp.open_listener,
    _uds.UDSAddress: _uds.start_listener,
}

PeerHandler = Callable[[Channel], Awaitable[None]]


class IPCServer:
    '''Accepts peer connections for one actor.'''

    def __init__(
        self,
        get_aid: Callable[[], Aid],
        handle_peer: PeerHandler,
    ) -> None:
        self._get_aid = get_aid
        self._handle_peer = handle_peer
        self._peers: defaultdict[tuple[str, str], list[Channel]] = defaultdict(list)
        self._no_more_peers = trio.Event()
        self._no_more_peers.set()
        self._peer_connected: dict[tuple[str, str], trio.Event] = {}
        self._listeners: list[trio.SocketListener] = []
        self.accept_addrs: list[Address] = []
        self._listen_scope: trio.CancelScope|None = None
        self._shutdown = trio.Event()

    # -- lifecycle --
    async def serve(
        self,
        addrs: list[Address],
        *,
        task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        '''
        Listen on `addrs`, report the addresses actually bound, then accept
        until `cancel()`. Connection handlers run in this task's nursery, so
        they end when this task is cancelled from outside.
        '''
        try:
            for addr in addrs:
                listener, bound = await _listen_for[type(addr)](addr)
                self._listeners.append(listener)
                self.accept_addrs.append(bound)
        except BaseException:
            await self._close_listeners()
            raise
        async with trio.open_nursery() as handlers_tn:
            try:
                async with trio.open_nursery() as accept_tn:
                    self._listen_scope = accept_tn.cancel_scope
                    for listener in self._listeners:
                        accept_tn.start_soon(self._accept_loop, listener, handlers_tn)
                    task_status.started(list(self.accept_addrs))
            finally:
                await self._close_listeners()
                self._shutdown.set()
            # no longer accepting: serve the connected peers until cancelled
            await trio.sleep_forever()

    async def _accept_loop(
        self,
        listener: trio.SocketListener,
        handlers_tn: trio.Nursery,
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            except OSError as err:
                logger.warning(f'accept() failed on {listener!r}: {err}')
                await trio.sleep(0.01)
                continue
            handlers_tn.start_soon(self._handle_stream, stream)

    async def _close_listeners(self) -> None:
        with trio.CancelScope(shield=True):
            for listener in self._listeners:
                await listener.aclose()
            for addr in self.accept_addrs:
                if isinstance(addr, _uds.UDSAddress):
                    _uds.unlink_socket(addr)
            self._listeners.clear()

    def cancel(self) -> None:
        '''Stop accepting new connections (existing ones stay up).'''
        if self._listen_scope is not None:
            self._listen_scope.cancel()

    async def wait_for_shutdown(self) -> None:
        await self._shutdown.wait()

    # -- peers --
    async def _handle_stream(self, stream: trio.SocketStream) -> None:
        chan = Channel.from_stream(stream)
        try:
            await chan._do_handshake(self._get_aid(), timeout=HANDSHAKE_TIMEOUT)
        except TransportClosed as err:
            logger.runtime(f'Dropping connection that failed the handshake: {err}')
            await chan.aclose()
            return
        if chan.aid.is_probe:
            # a registry probe only wanted our `Aid` back
            await chan.aclose()
            return

        uid = chan.aid.uid
        self._peers[uid].append(chan)
        if self._no_more_peers.is_set():
            self._no_more_peers = trio.Event()
        event = self._peer_connected.pop(uid, None)
        if event is not None:
            event.set()
        try:
            await self._handle_peer(chan)
        finally:
            chans = self._peers.get(uid)
            if chans is not None:
                if chan in chans:
                    chans.remove(chan)
                if not chans:
                    del self._peers[uid]
            if not self._peers:
                self._no_more_peers.set()
            await chan.aclose()

    async def wait_for_peer(self, uid: tuple[str, str]) -> tuple[trio.Event, Channel]:
        '''Block until peer `uid` has connected; return its latest channel.'''
        while not (chans := self._peers.get(uid)):
            event = self._peer_connected.setdefault(uid, trio.Event())
            await event.wait()
        event = trio.Event()
        event.set()
        return event, chans[-1]

    async def wait_for_no_more_peers(self) -> None:
        await self._no_more_peers.wait()

    def __repr__(self) -> str:
        return f'<IPCServer {self.accept_addrs!r} peers={len(self._peers)}>'


Server = IPCServer

