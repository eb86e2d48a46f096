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


def _family(host: str) -> int:
    return trio.socket.AF_INET6 if ':' in host else trio.socket.AF_INET


# Hosts are IP literals (checked above), so there is nothing to resolve:
# the sockets are made directly instead of through `getaddrinfo()`, which
# would load the `idna` codec into every actor and cost a lookup per
# connection.

async def open_listener(addr: TCPAddress) -> tuple[trio.SocketListener, TCPAddress]:
    '''Listen on `addr`; returns the listener and the address actually bound.'''
    sock = trio.socket.socket(_family(addr.host), trio.socket.SOCK_STREAM)
    try:
        # as trio's own listeners: rebinding a port in TIME_WAIT is fine
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        if sock.family == trio.socket.AF_INET6:
            sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 1)
        await sock.bind((addr.host, addr.port))
        # the kernel caps it at its own maximum
        sock.listen(0xFFFF)
    except BaseException:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]
    return trio.SocketListener(sock), TCPAddress(host, port)


async def connect(addr: TCPAddress) -> trio.SocketStream:
    sock = trio.socket.socket(_family(addr.host), trio.socket.SOCK_STREAM)
    try:
        await sock.connect((addr.host, addr.port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


class MsgpackTCPStream(MsgpackTransport):
    '''Length-prefixed msgpack frames over a TCP stream.'''

    def _addrs(self) -> tuple[TCPAddress, TCPAddress]:
        sock = self.stream.socket
        lhost, lport = sock.getsockname()[:2]
        rhost, rport = sock.getpeername()[:2]
        return TCPAddress(lhost, lport), TCPAddress(rhost, rport)
