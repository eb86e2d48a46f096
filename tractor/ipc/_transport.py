'''
Framing: every message is a little-endian u32 length prefix followed by
that many bytes of msgpack.

The reader pulls large chunks off the socket and cuts frames out of them,
so a burst of small messages costs one syscall; a frame is decoded from a
memoryview of the chunk it arrived in, with no copy unless it straddles two
chunks. A length prefix above the limit is refused before anything is
allocated for it.
'''
from __future__ import annotations

import os
import struct
from typing import Any

import msgspec
import trio

from ..msg._codec import _ctxvar_MsgCodec

_PREFIX = struct.Struct('<I')
_PREFIX_SIZE = _PREFIX.size
_CHUNK = 1 << 16
# a task sending without ever blocking yields to the scheduler this often
_YIELD_EVERY = 16

# 64 MiB: generous for payloads, small enough that a garbage prefix cannot
# make a reader allocate gigabytes
MAX_MSG_SIZE: int = 1 << 26


class FrameTooLarge(Exception):
    '''A frame's length prefix (or an outgoing message) exceeds the limit.'''


class UndecodableFrame(Exception):
    '''A frame's bytes are not msgpack at all.'''


class BadMsg(Exception):
    '''
    A frame decoded as msgpack but is not a valid protocol message; carries
    the decoded object (usually a dict) so the receiver can report it.
    '''
    def __init__(self, reason: str, as_obj: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.as_obj = as_obj


class PeerClosed(Exception):
    '''
    The peer went away. `clean` is True when it closed at a frame
    boundary (a graceful close), False mid-frame or on a reset.
    '''
    def __init__(self, reason: str, clean: bool) -> None:
        super().__init__(reason)
        self.clean = clean


class MsgpackTransport:
    '''Sends and receives protocol messages over one byte stream.'''
    max_msg_size: int = MAX_MSG_SIZE

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._send_lock = trio.StrictFIFOLock()
        self._buf: bytes = b''
        self._pos: int = 0
        self._fast_sends: int = 0
        self.laddr, self.raddr = self._addrs()

    def _addrs(self) -> tuple[Any, Any]:
        raise NotImplementedError

    # -- send --
    async def send(self, msg: Any) -> None:
        codec = _ctxvar_MsgCodec.get()
        frame = bytearray(_PREFIX_SIZE)
        codec.encode_into(msg, frame, _PREFIX_SIZE)
        size = len(frame) - _PREFIX_SIZE
        if size > self.max_msg_size:
            raise FrameTooLarge(
                f'Refusing to send a {size} byte message; '
                f'the limit is {self.max_msg_size} bytes'
            )
        _PREFIX.pack_into(frame, 0, size)

        lock = self._send_lock
        if lock.locked():
            async with lock:
                await self.stream.send_all(frame)
            return
        # Fast path: when nobody else is sending, write straight to the
        # socket; trio's `send_all()` costs two scheduler passes even when
        # the kernel takes the whole frame at once. Only the rest of a
        # frame the kernel did not take goes through `send_all()`.
        await trio.lowlevel.checkpoint_if_cancelled()
        lock.acquire_nowait()
        try:
            sent = 0
            fd = self.stream.socket.fileno()
            if fd >= 0:
                try:
                    sent = os.write(fd, frame)
                except BlockingIOError:
                    pass
            if sent < len(frame):
                await self.stream.send_all(memoryview(frame)[sent:])
            else:
                self._fast_sends += 1
                if self._fast_sends % _YIELD_EVERY == 0:
                    # a sender that never blocks must still let others run
                    await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            lock.release()

    # -- receive --
    async def _fill(self, needed: int) -> None:
        '''Make at least `needed` unread bytes available in the buffer.'''
        have = len(self._buf) - self._pos
        parts: list[bytes] = [self._buf[self._pos:]] if have else []
        while have < needed:
            chunk = await self.stream.receive_some(max(needed - have, _CHUNK))
            if not chunk:
                if have == 0:
                    raise PeerClosed('peer closed the connection', clean=True)
                raise PeerClosed(
                    f'peer closed the connection mid-frame '
                    f'({have}/{needed} bytes)',
                    clean=False,
                )
            parts.append(chunk)
            have += len(chunk)
        self._buf = parts[0] if len(parts) == 1 else b''.join(parts)
        self._pos = 0

    async def recv(self) -> Any:
        if len(self._buf) - self._pos < _PREFIX_SIZE:
            await self._fill(_PREFIX_SIZE)
        (size,) = _PREFIX.unpack_from(self._buf, self._pos)
        if size > self.max_msg_size:
            raise FrameTooLarge(
                f'Peer announced a {size} byte frame; '
                f'the limit is {self.max_msg_size} bytes'
            )
        if len(self._buf) - self._pos < _PREFIX_SIZE + size:
            await self._fill(_PREFIX_SIZE + size)
        start = self._pos + _PREFIX_SIZE
        end = start + size
        self._pos = end
        frame = memoryview(self._buf)[start:end]
        try:
            return _ctxvar_MsgCodec.get().decode(frame)
        except msgspec.ValidationError as err:
            try:
                as_obj = msgspec.msgpack.decode(frame)
            except msgspec.DecodeError:
                raise UndecodableFrame(str(err)) from err
            raise BadMsg(str(err), as_obj) from err
        except (msgspec.DecodeError, UnicodeDecodeError) as err:
            raise UndecodableFrame(
                f'undecodable {size} byte frame: {err}'
            ) from err

    async def aclose(self) -> None:
        await self.stream.aclose()
