'''
Fault injection helpers for IPC tests.

'''
from __future__ import annotations

from typing import Any


async def break_ipc(
    stream: Any,
    method: str | None = None,
    pre_close: bool = False,
    def_method: str = 'socket_close',
) -> None:
    '''
    Break the transport underneath a `MsgStream`, to simulate a
    network failure mid-dialog.

    With `pre_close` the stream itself is `.aclose()`d first. Then,
    per `method` (default `def_method`), the stream's channel's
    underlying byte-stream is either closed (`'socket_close'`) or
    half-closed (`'socket_eof'`). Any other method is a
    `RuntimeError`.

    '''
    method = method or def_method
    if method not in ('socket_close', 'socket_eof'):
        raise RuntimeError(
            f'Unknown IPC-breaking method {method!r}; '
            "use 'socket_close' or 'socket_eof'."
        )

    if pre_close:
        await stream.aclose()

    byte_stream = stream._ctx.chan.transport.stream
    if method == 'socket_close':
        await byte_stream.aclose()
    else:
        await byte_stream.send_eof()
