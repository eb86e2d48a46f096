'''
`Context`: one side of an IPC dialog (one remote task), keyed by `cid`.

The channel's message loop pushes every message addressed to the dialog
into the context's feeder memory channel without blocking; the task that
owns the dialog reads them from there.
'''
from __future__ import annotations

from typing import (
    Any,
    TYPE_CHECKING,
)

import msgspec
import trio

from tractor._exceptions import (
    TransportClosed,
    unpack_error,
)
from tractor.msg.types import (
    Error,
    PayloadMsg,
)

if TYPE_CHECKING:
    from tractor.ipc import Channel
    from tractor.runtime._portal import Portal


class Unresolved:
    '''Sentinel: the dialog's outcome is not known yet.'''


class Context:
    '''One side of a dialog with a remote task.'''

    def __init__(
        self,
        chan: Channel,
        cid: str,
        *,
        side: str,
        portal: Portal|None = None,
        msg_buffer_size: int = 2**6,
        nsf: str = '',
    ) -> None:
        self.chan = chan
        self.cid = cid
        self.side = side
        self.portal = portal
        self._nsf = nsf
        self._send_chan, self._rx_chan = trio.open_memory_channel(msg_buffer_size)
        self._scope: trio.CancelScope|None = None
        self._remote_error: BaseException|None = None
        self._local_error: BaseException|None = None
        self._result: Any = Unresolved
        self._cancel_called: bool = False
        self._functype: str|None = None
        self._chan_lost: TransportClosed|None = None

    @property
    def peer_side(self) -> str:
        return 'child' if self.side == 'parent' else 'parent'

    @property
    def cancel_called(self) -> bool:
        return self._cancel_called

    @property
    def outcome(self) -> Any:
        return self._remote_error or self._local_error or self._result

    # -- fed by the message loop (never blocks) --
    def _deliver_msg(self, msg: Any) -> bool:
        try:
            self._send_chan.send_nowait(msg)
            return True
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return False

    def _on_chan_lost(self, err: TransportClosed) -> None:
        '''The channel died: end the feed so a reader wakes up.'''
        self._chan_lost = err
        self._send_chan.close()

    # -- read by the owning task --
    async def _recv_msg(self) -> Any:
        try:
            return await self._rx_chan.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self.chan._exc is not None:
                self._remote_error = self.chan._exc
                raise self.chan._exc from None
            peer = self.chan.aid.reprol() if self.chan.aid else '<unknown>'
            raise TransportClosed(
                f'IPC channel to actor {peer} closed while waiting for '
                f'`{self._nsf}` (cid {self.cid})',
                src_exc=self._chan_lost,
            ) from self._chan_lost

    def _raise_or_pld(self, msg: Any) -> Any:
        '''The payload of a payload message; raise a boxed `Error`.'''
        if isinstance(msg, Error):
            self._remote_error = err = unpack_error(msg, self.chan)
            raise err
        if isinstance(msg, PayloadMsg):
            pld = msg.pld
            return msgspec.msgpack.decode(pld) if isinstance(pld, msgspec.Raw) else pld
        return msg

    def __repr__(self) -> str:
        return f'<Context {self.side} cid={self.cid} {self._nsf}>'
