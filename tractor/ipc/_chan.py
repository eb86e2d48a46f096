'''
`Channel`: one IPC connection to a peer actor, sending and receiving typed
protocol messages, with the peer's identity (`Aid`) learnt by handshake.
'''
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
)

import trio

from tractor import log
from tractor._exceptions import (
    HandshakeFailed,
    MsgTypeError,
    TransportClosed,
    _mk_send_mte,
)
from tractor.msg._codec import _ctxvar_MsgCodec
from tractor.msg.types import (
    Aid,
    Error,
)

from . import _auth, _tcp, _uds
from ._addr import Address, wrap_address
from ._multiaddr import mk_maddr
from ._transport import (
    BadMsg,
    FrameTooLarge,
    MsgpackTransport,
    PeerClosed,
    UndecodableFrame,
)

logger = log.get_logger()

# bound on the whole authenticated handshake, on both sides
HANDSHAKE_TIMEOUT: float = 10.0

_transport_for: dict[type, tuple[Any, type[MsgpackTransport]]] = {
    _tcp.TCPAddress: (_tcp.connect, _tcp.MsgpackTCPStream),
    _uds.UDSAddress: (_uds.connect, _uds.MsgpackUDSStream),
}


def _transport_from_stream(stream: trio.SocketStream) -> MsgpackTransport:
    family = stream.socket.family
    if _uds.HAS_UDS and family == _uds.socket.AF_UNIX:
        return _uds.MsgpackUDSStream(stream)
    return _tcp.MsgpackTCPStream(stream)


class Channel:
    '''A connection to one peer carrying protocol messages.'''

    def __init__(self, transport: MsgpackTransport) -> None:
        self.transport = transport
        self.aid: Aid|None = None
        self._exc: BaseException|None = None
        self._cancel_called: bool = False
        self._closed: bool = False
        self._closed_event = trio.Event()

    # -- construction --
    @classmethod
    async def from_addr(cls, addr: Any) -> Channel:
        addr = wrap_address(addr)
        connect, transport_type = _transport_for[type(addr)]
        try:
            stream = await connect(addr)
        except OSError as err:
            raise ConnectionError(f'Could not connect to {addr!r}: {err}') from err
        try:
            # reads both ends' names: fails if the peer already hung up
            transport = transport_type(stream)
        except OSError as err:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            raise ConnectionError(
                f'Connection to {addr!r} closed at once (refused?): {err}'
            ) from err
        return cls(transport)

    @classmethod
    def from_stream(cls, stream: trio.SocketStream) -> Channel:
        return cls(_transport_from_stream(stream))

    # -- identity and addressing --
    @property
    def uid(self) -> tuple[str, str]|None:
        return self.aid.uid if self.aid else None

    @property
    def laddr(self) -> Address:
        return self.transport.laddr

    @property
    def raddr(self) -> Address:
        return self.transport.raddr

    @property
    def maddr(self) -> str:
        return mk_maddr(self.raddr)

    @property
    def cancel_called(self) -> bool:
        return self._cancel_called

    @property
    def closed(self) -> bool:
        return self._closed

    def connected(self) -> bool:
        return not self._closed

    def __repr__(self) -> str:
        peer = self.aid.reprol() if self.aid else '<no handshake>'
        return f'<Channel {peer} {self.raddr!r}>'

    # -- messaging --
    async def send(
        self,
        msg: Any,
        hide_tb: bool = True,
        schedule: bool = True,
    ) -> None:
        '''
        Send one protocol message; `TransportClosed` if the connection is
        gone, `MsgTypeError` if `msg` can not be encoded. `hide_tb` keeps
        this frame out of tracebacks. Like any trio send it lets the other
        ready tasks run; the runtime passes `schedule=False` for the
        messages of a call it makes or serves itself (a cancellation point
        only: no task of the user's waits on those).
        '''
        __tracebackhide__ = hide_tb
        if self._closed:
            raise TransportClosed(f'{self!r} is closed; can not send {type(msg).__name__}')
        try:
            await self.transport.send(msg, schedule)
        except TypeError as err:
            raise _mk_send_mte(msg, _ctxvar_MsgCodec.get(), err) from err
        except RecursionError as err:
            raise MsgTypeError(
                f'Can not send {type(msg).__name__}: a value in it is nested '
                'too deeply to encode',
                boxed_type=MsgTypeError,
            ) from err
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            OSError,
        ) as err:
            raise TransportClosed.from_src_exc(
                err,
                f'Connection to {self.aid and self.aid.reprol()} broke while sending',
            ) from err

    async def recv(self) -> Any:
        '''
        The next message. A message that decodes but does not fit the
        protocol comes back as an `Error` addressed to its dialog (when it
        names one) or is raised as `MsgTypeError`; a connection that cannot
        go on (peer gone, garbage, oversized frame) raises `TransportClosed`.
        '''
        try:
            return await self.transport.recv()
        except Exception as err:
            return self._recv_failed(err)

    def recv_ready(self) -> Any:
        '''
        The next message if it has fully arrived already, else None (no
        waiting; errors as `recv()`): the message loop's burst path.
        '''
        try:
            return self.transport.recv_ready()
        except Exception as err:
            return self._recv_failed(err)

    def _recv_failed(self, err: Exception) -> Any:
        '''What a failed receive means: an `Error` to deliver, or raised.'''
        if isinstance(err, BadMsg):
            return self._bad_msg_to_error(err)
        if isinstance(err, PeerClosed):
            raise TransportClosed(
                str(err),
                loglevel='transport' if err.clean else 'warning',
                src_exc=err,
            ) from err
        if isinstance(err, (UndecodableFrame, FrameTooLarge)):
            raise TransportClosed(
                f'Dropping connection from {self.aid and self.aid.reprol()}: {err}',
                loglevel='error',
                src_exc=err,
            ) from err
        if isinstance(err, (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            OSError,
        )):
            raise TransportClosed(
                f'Connection to {self.aid and self.aid.reprol()} broke: {err!r}',
                loglevel='transport',
                src_exc=err,
            ) from err
        raise err

    def _bad_msg_to_error(self, bad: BadMsg) -> Error:
        as_dict = bad.as_obj if isinstance(bad.as_obj, dict) else None
        cid = as_dict.get('cid') if as_dict else None
        mte = MsgTypeError.from_decode(
            f'Received an invalid IPC msg from {self.aid and self.aid.reprol()}:'
            f' {bad.reason}',
            bad_msg_as_dict=as_dict,
        )
        if not isinstance(cid, str) or as_dict.get('msg_type') == 'Start':
            # no dialog to end here: a bad request is for the receiver to
            # answer (its `cid` is in `mte.bad_msg_as_dict`), else dropped
            raise mte
        peer = self.aid.uid if self.aid else ('<unknown>', '<unknown>')
        return Error(
            src_uid=peer,
            src_type_str='MsgTypeError',
            boxed_type_str='MsgTypeError',
            relay_path=[peer],
            message=str(mte.message),
            cid=cid,
            _bad_msg_as_dict=as_dict,
        )

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iter_msgs()

    async def _iter_msgs(self) -> AsyncIterator[Any]:
        while True:
            try:
                yield await self.recv()
            except TransportClosed as tc:
                if isinstance(tc.src_exc, PeerClosed) and tc.src_exc.clean:
                    return
                raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            with trio.CancelScope(shield=True):
                await self.transport.aclose()
        finally:
            self._closed_event.set()

    async def wait_closed(self) -> None:
        '''Until this channel is closed (its serving loop closes it on EOF).'''
        await self._closed_event.wait()

    def _peer_label(self) -> str:
        '''How to name the other end before we know who it is.'''
        raddr = self.raddr
        pid = getattr(raddr, 'maybe_pid', None)
        if pid is not None and pid != os.getpid():
            return f'the peer (pid {pid}) on {raddr!r}'
        return f'the peer at {raddr!r}'

    async def _do_handshake(
        self,
        aid: Aid,
        timeout: float|None = None,
        *,
        accept: bool = False,
        secret: _auth.Secret|None = None,
    ) -> Aid:
        '''
        Authenticate both ends and exchange identities (see
        `tractor.ipc._auth`): returns the peer's `Aid`, or raises
        `HandshakeFailed` naming the peer. Bounded by `timeout`
        (default `HANDSHAKE_TIMEOUT`); `accept` says we are the side that
        accepted the connection.
        '''
        if timeout is None:
            timeout = HANDSHAKE_TIMEOUT
        peer = self._peer_label()
        with trio.move_on_after(timeout) as cs:
            peer_aid = await _auth.authenticate(
                self.transport,
                aid,
                accept=accept,
                secret=secret or _auth.current_secret(),
                peer=peer,
            )
        if cs.cancelled_caught:
            raise HandshakeFailed(
                f'{peer} did not complete the handshake within {timeout} s',
                loglevel='warning',
            )
        self.transport.authenticated()
        self.aid = peer_aid
        return peer_aid


@asynccontextmanager
async def _connect_chan(
    addr: Any,
    close_timeout: float|None = None,
) -> AsyncIterator[Channel]:
    '''Connect a `Channel` to `addr` for the duration of the block.'''
    chan = await Channel.from_addr(addr)
    try:
        yield chan
    finally:
        with trio.CancelScope(shield=True) as cs:
            if close_timeout is not None:
                cs.deadline = trio.current_time() + close_timeout
            await chan.aclose()
