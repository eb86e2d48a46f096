'''
Multiaddr strings for transport addresses: `/ip4/<host>/tcp/<port>` and
`/unix/<socket path>`. Only these two shapes are supported, so plain string
handling does; the `multiaddr` package is not needed.
'''
from __future__ import annotations

import ipaddress
from pathlib import Path
from ._tcp import TCPAddress
from ._uds import UDSAddress

_tpt_proto_to_maddr: dict[str, str] = {'tcp': 'tcp', 'uds': 'unix'}
_maddr_to_tpt_proto: dict[str, str] = {
    value: key for key, value in _tpt_proto_to_maddr.items()
}


def mk_maddr(addr: TCPAddress|UDSAddress) -> str:
    if isinstance(addr, TCPAddress):
        version = ipaddress.ip_address(addr.host).version
        return f'/ip{version}/{addr.host}/tcp/{addr.port}'
    if isinstance(addr, UDSAddress):
        return f'/unix/{str(addr.sockpath).lstrip("/")}'
    raise TypeError(f'No multiaddr form for {addr!r}')


def parse_maddr(maddr: str) -> TCPAddress|UDSAddress:
    parts = maddr.strip('/').split('/')
    if len(parts) == 4 and parts[0] in ('ip4', 'ip6') and parts[2] == 'tcp':
        return TCPAddress(parts[1], int(parts[3]))
    if len(parts) >= 2 and parts[0] == 'unix':
        return UDSAddress.from_addr(Path('/', *parts[1:]))
    raise ValueError(f'Unsupported multiaddr {maddr!r}')

