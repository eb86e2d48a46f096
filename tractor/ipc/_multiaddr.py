'''
Multiaddrs for transport addresses: `/ip4/<host>/tcp/<port>` (`/ip6/...`)
and `/unix/<socket path>`, as `multiaddr.Multiaddr` objects. The
`multiaddr` package is imported only when one is made or parsed.

`mk_maddr()` here is the plain-text form (no import) that channels show
in their reprs; `tractor.discovery.mk_maddr()` makes the objects.
'''
from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import (
    Any,
    TYPE_CHECKING,
)

from ._tcp import TCPAddress
from ._uds import UDSAddress

if TYPE_CHECKING:
    from multiaddr import Multiaddr
else:
    Multiaddr = Any

_tpt_proto_to_maddr: dict[str, str] = {'tcp': 'tcp', 'uds': 'unix'}
_maddr_to_tpt_proto: dict[str, str] = {
    value: key for key, value in _tpt_proto_to_maddr.items()
}


def mk_maddr(addr: TCPAddress|UDSAddress) -> str:
    '''The multiaddr text of a transport address.'''
    if isinstance(addr, TCPAddress):
        version = ipaddress.ip_address(addr.host).version
        return f'/ip{version}/{addr.host}/tcp/{addr.port}'
    if isinstance(addr, UDSAddress):
        return f'/unix/{str(addr.sockpath).lstrip("/")}'
    raise TypeError(f'No multiaddr form for {addr!r}')


def mk_maddr_obj(addr: TCPAddress|UDSAddress) -> Multiaddr:
    '''A transport address as a `multiaddr.Multiaddr`.'''
    from multiaddr import Multiaddr
    return Multiaddr(mk_maddr(addr))


def is_maddr(obj: Any) -> bool:
    '''Whether `obj` is a `multiaddr.Multiaddr` (never imports the package).'''
    lib = sys.modules.get('multiaddr')
    return lib is not None and isinstance(obj, lib.Multiaddr)


def parse_maddr(maddr: str|Multiaddr) -> TCPAddress|UDSAddress:
    '''
    The transport address a multiaddr (text or object) names; only
    `ip4|ip6` + `tcp` and `unix` are supported (`ValueError` otherwise).
    '''
    from multiaddr import Multiaddr
    try:
        parsed = maddr if isinstance(maddr, Multiaddr) else Multiaddr(maddr)
    except Exception as err:
        raise ValueError(f'Invalid multiaddr {maddr!r}: {err}') from err
    protos = [proto.name for proto in parsed.protocols()]
    if protos in (['ip4', 'tcp'], ['ip6', 'tcp']):
        return TCPAddress(
            parsed.value_for_protocol(protos[0]),
            int(parsed.value_for_protocol('tcp')),
        )
    if protos == ['unix']:
        # the text form percent-encodes the path (`@` is `%40`)
        from urllib.parse import unquote
        path = unquote(parsed.value_for_protocol('unix'))
        return UDSAddress.from_addr(Path('/', path.lstrip('/')))
    raise ValueError(
        f'Unsupported multiaddr {str(parsed)!r} (protocols {"/".join(protos)}): '
        'only /ip4|ip6/<host>/tcp/<port> and /unix/<path> name a transport'
    )
