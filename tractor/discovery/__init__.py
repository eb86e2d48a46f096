'''
Discovery: addresses, the registrar and looking actors up by name.
'''
from ._api import (
    find_actor as find_actor,
    get_registry as get_registry,
    query_actor as query_actor,
    wait_for_actor as wait_for_actor,
)
from ._multiaddr import (
    mk_maddr as mk_maddr,
    parse_endpoints as parse_endpoints,
    parse_maddr as parse_maddr,
)
