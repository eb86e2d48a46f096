'''Multiaddr helpers (implemented in the IPC layer).'''
from tractor.ipc._addr import parse_endpoints  # noqa: F401
from tractor.ipc._multiaddr import (  # noqa: F401
    _maddr_to_tpt_proto,
    _tpt_proto_to_maddr,
    mk_maddr,
    parse_maddr,
)
