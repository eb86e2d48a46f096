'''Address wrapping (implemented in the IPC layer).'''
from tractor.ipc._addr import (  # noqa: F401
    Address,
    UnwrappedAddress,
    _address_types,
    _default_lo_addrs,
    default_lo_addrs,
    get_address_cls,
    is_wrapped_addr,
    mk_uuid,
    wrap_address,
)
