'''
The IPC layer: transports (TCP, UDS), framing, `Channel`, and the server
each actor runs.
'''
from ._chan import (
    Channel as Channel,
    _connect_chan as _connect_chan,
)
from ._server import IPCServer as IPCServer
