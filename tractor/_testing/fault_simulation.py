# tractor: structured concurrent "actors".
# Copyright 2018-eternity the tractor contributors.
#
# This program is free software: you can redistribute it and/or modify
# it under the terms of the GNU Affero General Public License as published by
# the Free Software Foundation, either version 3 of the License, or
# (at your option) any later version.
#
# This program is distributed in the hope that it will be useful,
# but WITHOUT ANY WARRANTY; without even the implied warranty of
# MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
# GNU Affero General Public License for more details.
#
# You should have received a copy of the GNU Affero General Public License
# along with this program.  If not, see <https://www.gnu.org/licenses/>.

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
