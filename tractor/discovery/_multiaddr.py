'''
Multiaddr helpers: `mk_maddr()` makes a `multiaddr.Multiaddr` of an
address, `parse_maddr()` the address of one (or of its text);
implemented in the IPC layer, whose `wrap_address()` accepts them
wherever an address goes (`registry_addrs`, `tpt_bind_addrs`, ...).
'''
from tractor.ipc._addr import parse_endpoints  # noqa: F401
from tractor.ipc._multiaddr import (  # noqa: F401
    _maddr_to_tpt_proto,
    _tpt_proto_to_maddr,
    parse_maddr,
)
from tractor.ipc._multiaddr import mk_maddr_obj as mk_maddr  # noqa: F401
