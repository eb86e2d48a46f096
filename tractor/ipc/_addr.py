'''
Wrapping plain ("unwrapped") addresses into transport address objects.
'''
from __future__ import annotations

from typing import Any, Union

from ._multiaddr import (
    is_maddr,
    parse_maddr,
)
from ._tcp import TCPAddress
from ._uds import UDSAddress

Address = Union[TCPAddress, UDSAddress]
UnwrappedAddress = Union[tuple[str, int], tuple[str, str]]

_address_types: dict[str, type] = {
    'tcp': TCPAddress,
    'uds': UDSAddress,
}
_default_lo_addrs: dict[str, UnwrappedAddress] = {
    key: addr_cls.get_root().unwrap()
    for key, addr_cls in _address_types.items()
}


def get_address_cls(proto_key: str) -> type:
    try:
        return _address_types[proto_key]
    except KeyError:
        raise NotImplementedError(
            f'No transport named {proto_key!r}; '
            f'known: {list(_address_types)}'
        ) from None


def is_wrapped_addr(addr: Any) -> bool:
    return isinstance(addr, (TCPAddress, UDSAddress))


def default_lo_addrs(transports: list[str]) -> list[UnwrappedAddress]:
    return [_default_lo_addrs[key] for key in transports]


def wrap_address(
    addr: Any,
    default_proto: str = 'tcp',
) -> Address:
    '''Pick the address class from the shape of `addr`.'''
    if is_wrapped_addr(addr):
        return addr
    if addr is None or (
        isinstance(addr, (list, tuple)) and list(addr) == [None, None]
    ):
        return get_address_cls(default_proto).get_root()
    if (isinstance(addr, str) and addr.startswith('/')) or is_maddr(addr):
        return parse_maddr(addr)
    if isinstance(addr, (list, tuple)) and len(addr) == 2:
        first, second = addr
        if isinstance(first, str) and isinstance(second, int):
            return TCPAddress.from_addr(addr)
        if isinstance(second, str):
            return UDSAddress.from_addr(addr)
    raise TypeError(f'Can not wrap unknown address type: {addr!r}')


def parse_endpoints(table: dict[str, list[Any]]) -> dict[str, list[Address]]:
    '''Wrap every address of a `{name: [addr, ...]}` table.'''
    return {
        name: [wrap_address(addr) for addr in addrs]
        for name, addrs in table.items()
    }


def mk_uuid() -> str:
    import uuid
    return str(uuid.uuid4())
