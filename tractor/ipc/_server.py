'''
The IPC server every actor runs: it listens on the actor's accept
addresses, performs the identity handshake on each new connection, keeps
the table of connected peers and hands each peer's `Channel` to the
runtime's message loop.

The server knows nothing about RPC: the runtime passes in the coroutine that
serves a connected peer.
'''
from __future__ import annotations

import time
import errno
import os
from collections import (
    OrderedDict,
    defaultdict,
)
from typing import (
    Awaitable,
    Callable,
)

import trio

from tractor import log
from tractor._exceptions import HandshakeFailed
from tractor.msg.types import Aid

from . import _tcp, _uds
from ._addr import Address
from ._chan import (
    HANDSHAKE_TIMEOUT as HANDSHAKE_TIMEOUT,
    Channel,
)

logger = log.get_logger()

# connections allowed to be mid-handshake at once, so unauthenticated
# peers hold little memory and few fds; a newcomer beyond it evicts the
# oldest (see `IPCServer._authenticate`)
MAX_PENDING_HANDSHAKES: int = 64

_listen_for: dict[type, Callable] = {
    _tcp.TCPAddress: _tcp.open_listener,
    _uds.UDSAddress: _uds.start_listener,
}

PeerHandler = Callable[[Channel], Awaitable[None]]

# `accept()` failure handling, see `_AcceptFailures`
ACCEPT_BACKOFF_MIN: float = 0.01
ACCEPT_BACKOFF_MAX: float = 1.0
ACCEPT_LOG_INTERVAL: float = 10.0
# resource exhaustion: trio passes these through from `accept()` untouched
_EXHAUSTION_ERRNOS: frozenset[int] = frozenset(
    getattr(errno, name)
    for name in ('EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM')
    if hasattr(errno, name)
)


def _listener_name(listener: trio.SocketListener) -> str:
    try:
        name = listener.socket.getsockname()
    except OSError:
        return repr(listener)
    return repr(os.fsdecode(name) if isinstance(name, bytes) else name)


class _AcceptFailures:
    '''
    Backoff and log rate-limiting for one accept loop.

    `failed()` returns how long to sleep (doubling from
    `ACCEPT_BACKOFF_MIN` up to `ACCEPT_BACKOFF_MAX`) and maybe a log
    line; `succeeded()` resets the backoff and maybe returns a
    "recovered" line. At most one failure line per `ACCEPT_LOG_INTERVAL`
    seconds (the first failure is reported at once, later ones as a
    count), plus one recovery line per failure streak that was reported,
    so even flapping exhaustion yields <= 2 lines per interval.
    '''

    def __init__(
        self,
        where: str,
        min_delay: float = ACCEPT_BACKOFF_MIN,
        max_delay: float = ACCEPT_BACKOFF_MAX,
        log_interval: float = ACCEPT_LOG_INTERVAL,
    ) -> None:
        self.where = where
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.log_interval = log_interval
        self.delay: float = 0.0
        self.streak: int = 0        # consecutive failures
        self.unreported: int = 0    # failures no log line mentioned yet
        self.streak_reported: bool = False
        self.last_log: float|None = None

    def _may_log(self, now: float) -> bool:
        return self.last_log is None or now - self.last_log >= self.log_interval

    def failed(self, err: OSError, now: float) -> tuple[float, str|None]:
        self.streak += 1
        self.unreported += 1
        self.delay = min(max(self.delay * 2, self.min_delay), self.max_delay)
        msg: str|None = None
        if self._may_log(now):
            what = (
                'out of file descriptors/buffers'
                if err.errno in _EXHAUSTION_ERRNOS
                else 'unexpected error'
            )
            if self.streak == 1:
                msg = (
                    f'accept() on {self.where} failed ({what}): {err}; '
                    f'retrying with backoff, existing connections are '
                    f'still served'
                )
                if self.unreported > 1:
                    msg += f' ({self.unreported - 1} earlier failures not logged)'
            else:
                msg = (
                    f'accept() on {self.where} still failing ({what}): '
                    f'{self.unreported} failures since the last report, '
                    f'{self.streak} in a row, latest: {err}; retrying '
                    f'every {self.delay:.2f}s'
                )
            self.unreported = 0
            self.last_log = now
            self.streak_reported = True
        return self.delay, msg

    def succeeded(self, now: float) -> str|None:
        if not self.streak:
            return None
        msg: str|None = None
        if self.streak_reported:
            msg = f'accept() on {self.where} recovered after {self.streak} failures'
            if self.unreported:
                msg += f' ({self.unreported} not logged)'
                self.unreported = 0
        self.streak = 0
        self.delay = 0.0
        self.streak_reported = False
        return msg


class RateLimitedLog:
    '''
    Logs at most `burst` warnings per `period` seconds, then one line
    saying how many were suppressed: a flood of bad peers must not
    become a flood of log lines.
    '''
    def __init__(self, burst: int = 5, period: float = 10.0) -> None:
        self.burst = burst
        self.period = period
        self._window_start = -float('inf')
        self._logged = 0
        self._suppressed = 0

    def warning(self, message: str) -> None:
        now = time.monotonic()
        if now - self._window_start >= self.period:
            if self._suppressed:
                logger.warning(
                    f'{self._suppressed} similar warning(s) suppressed in the '
                    f'last {self.period:g} s'
                )
            self._window_start = now
            self._logged = self._suppressed = 0
        if self._logged < self.burst:
            self._logged += 1
            logger.warning(message)
        else:
            self._suppressed += 1


# one per actor: refused and unauthenticated connections
_refusal_log = RateLimitedLog()


async def _close_quietly(stream: trio.SocketStream) -> None:
    with trio.CancelScope(shield=True):
        try:
            await stream.aclose()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


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
        # connections mid-handshake, oldest first
        self._pending_handshakes: OrderedDict[Channel, trio.CancelScope] = OrderedDict()
        # each bound socket file's identity, so we unlink only our own
        self._uds_files: dict[_uds.UDSAddress, tuple[int, int, int]|None] = {}

    @property
    def addrs(self) -> list[Address]:
        '''The addresses this server listens on (as bound, e.g. real ports).'''
        return list(self.accept_addrs)

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
                if isinstance(bound, _uds.UDSAddress):
                    self._uds_files[bound] = _uds.socket_file_id(bound)
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
        '''
        Accept connections on `listener` until it is closed, handing each
        to `_handle_stream()`. A failing `accept()` (typically EMFILE/ENFILE
        when out of fds) backs off exponentially instead of spinning, with
        rate-limited logging; the connected peers are served meanwhile by
        their own tasks.
        '''
        failures = _AcceptFailures(_listener_name(listener))
        while True:
            try:
                stream = await listener.accept()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            except OSError as err:
                # the pending connection stays queued, so retrying at once
                # would fail again at once: sleep it off
                delay, msg = failures.failed(err, trio.current_time())
                if msg:
                    logger.warning(msg)
                await trio.sleep(delay)
                continue
            msg = failures.succeeded(trio.current_time())
            if msg:
                logger.warning(msg)
            handlers_tn.start_soon(self._handle_stream, stream)

    async def _close_listeners(self) -> None:
        with trio.CancelScope(shield=True):
            for listener in self._listeners:
                await listener.aclose()
            for addr, file_id in self._uds_files.items():
                # only our own file: a stale-socket replacement may have
                # put a successor's there meanwhile
                if file_id is not None:
                    _uds.unlink_socket(addr, file_id)
            self._uds_files.clear()
            self._listeners.clear()

    def cancel(self) -> None:
        '''Stop accepting new connections (existing ones stay up).'''
        if self._listen_scope is not None:
            self._listen_scope.cancel()

    async def wait_for_shutdown(self) -> None:
        await self._shutdown.wait()

    # -- peers --
    async def _handle_stream(self, stream: trio.SocketStream) -> None:
        chan = await self._authenticate(stream)
        if chan is None:
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

    async def _authenticate(self, stream: trio.SocketStream) -> Channel|None:
        '''
        The new connection's channel once its peer authenticated, else
        `None` (the connection is closed; nothing it sent was acted on).
        '''
        if len(self._pending_handshakes) >= MAX_PENDING_HANDSHAKES:
            # evict the oldest: squatters idle there for the whole deadline,
            # while a real peer completes its handshake within a millisecond
            _oldest, scope = self._pending_handshakes.popitem(last=False)
            scope.cancel()
            _refusal_log.warning(
                f'{self!r}: {MAX_PENDING_HANDSHAKES} unauthenticated '
                'connections pending; dropping the oldest'
            )
        try:
            chan = Channel.from_stream(stream)
        except OSError as err:
            # gone before we could even ask who it is
            logger.runtime(f'Dropping a connection that went away at once: {err!r}')
            await _close_quietly(stream)
            return None
        with trio.CancelScope() as scope:
            self._pending_handshakes[chan] = scope
            try:
                await chan._do_handshake(self._get_aid(), accept=True)
            except HandshakeFailed as err:
                if err.loglevel == 'warning':
                    _refusal_log.warning(f'Dropped an unauthenticated connection: {err}')
                else:
                    logger.runtime(f'Dropped a connection during the handshake: {err}')
                await chan.aclose()
                return None
            finally:
                self._pending_handshakes.pop(chan, None)
            return chan
        # evicted
        await chan.aclose()
        return None

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

