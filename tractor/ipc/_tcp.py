'''
TCP transport: addresses and listeners.
'''
from __future__ import annotations

import ipaddress
from typing import ClassVar

import msgspec
import trio

from ._transport import MsgpackTransport


class TCPAddress(
    msgspec.Struct,
    frozen=True,
):
    '''An IP literal and a port; port 0 means "let the OS pick".'''
    _host: str
    _port: int

    proto_key: ClassVar[str] = 'tcp'
    unwrapped_type: ClassVar[type] = tuple
    def_bindspace: ClassVar[str] = '127.0.0.1'

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self._host)
        except ValueError:
            raise ValueError(
                f'TCP host must be an IP literal, not {self._host!r}'
            ) from None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def bindspace(self) -> str:
        return self._host

    @property
    def is_valid(self) -> bool:
        if self._port == 0:
            return False
        ip = ipaddress.ip_address(self._host)
        return not (
            ip.is_reserved or ip.is_unspecified or ip.is_link_local
            or ip.is_multicast or ip.is_global
        )

    @classmethod
    def from_addr(cls, addr: tuple[str, int]|list) -> TCPAddress:
        host, port = addr
        return cls(str(host), int(port))

    def unwrap(self) -> tuple[str, int]:
        return (self._host, self._port)

    @classmethod
    def get_random(
        cls,
        bindspace: str|None = None,
        name: str|None = None,
    ) -> TCPAddress:
        return cls(bindspace or cls.def_bindspace, 0)

    @classmethod
    def get_root(cls) -> TCPAddress:
        return cls('127.0.0.1', 1616)

    def __repr__(self) -> str:
        return f'{type(self).__name__}[{self.unwrap()!r}]'


async def open_listener(addr: TCPAddress) -> tuple[trio.SocketListener, TCPAddress]:
    '''Listen on `addr`; returns the listener and the address actually bound.'''
    listeners = await trio.open_tcp_listeners(addr.port, host=addr.host)
    if len(listeners) != 1:
        for extra in listeners:
            await extra.aclose()
        raise OSError(f'expected exactly one listener for {addr!r}')
    listener = listeners[0]
    host, port = listener.socket.getsockname()[:2]
    return listener, TCPAddress(host, port)


async def connect(addr: TCPAddress) -> trio.SocketStream:
    stream = await trio.open_tcp_stream(addr.host, addr.port)
    return stream


class MsgpackTCPStream(MsgpackTransport):
    '''Length-prefixed msgpack frames over a TCP stream.'''

    def _addrs(self) -> tuple[TCPAddress, TCPAddress]:
        sock = self.stream.socket
        lhost, lport = sock.getsockname()[:2]
        rhost, rport = sock.getpeername()[:2]
        return TCPAddress(lhost, lport), TCPAddress(rhost, rport)
