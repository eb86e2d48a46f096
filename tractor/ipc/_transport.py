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
from ._salvage import salvage_envelope

_PREFIX = struct.Struct('<I')
_PREFIX_SIZE = _PREFIX.size
_CHUNK = 1 << 16
# a frame bigger than a chunk is read at most this much per syscall, so
# its buffer grows with the bytes that actually arrived
_MAX_READ = 1 << 20


def _env_size(name: str, default: int) -> int:
    '''A positive byte count from env var `name`; a bad value is an error.'''
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if size <= 0:
        raise ValueError(f'${name} must be a positive number of bytes, not {raw!r}')
    return size


# the largest frame an authenticated peer may send (env
# `TRACTOR_MAX_MSG_SIZE`, bytes; default 64 MiB): generous for payloads,
# small enough that a garbage prefix cannot make a reader allocate gigabytes
MAX_MSG_SIZE: int = _env_size('TRACTOR_MAX_MSG_SIZE', 1 << 26)
# the largest frame before the peer authenticated: the handshake needs
# a few hundred bytes
PREAUTH_MAX_MSG_SIZE: int = 4096
# bytes of frames larger than a chunk that all connections of this actor
# may hold while they are still arriving (env `TRACTOR_RECV_BUDGET`;
# default 256 MiB); a connection waits (reads nothing more) until its
# whole frame fits
RECV_BUDGET: int = _env_size('TRACTOR_RECV_BUDGET', 1 << 28)
if RECV_BUDGET < MAX_MSG_SIZE:
    # a frame the budget can never hold would only ever drop its connection
    RECV_BUDGET = MAX_MSG_SIZE


class RecvBudget:
    '''
    Caps the bytes of large frames being received, across all the
    connections of one actor. A frame reserves its whole size before its
    body is read and releases it once decoded, so readers waiting for
    room hold nothing and cannot deadlock one another.
    '''
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lot = trio.lowlevel.ParkingLot()

    async def acquire(self, size: int) -> None:
        if size > self.limit:
            raise FrameTooLarge(
                f'Peer announced a {size} byte frame; this actor buffers at '
                f'most {self.limit} bytes of frames in flight'
            )
        while self.used + size > self.limit:
            await self._lot.park()
        self.used += size

    def release(self, size: int) -> None:
        self.used -= size
        self._lot.unpark_all()


_recv_budget: RecvBudget|None = None


def recv_budget() -> RecvBudget:
    '''This actor's (process's or sub-interpreter's) receive budget.'''
    global _recv_budget
    if _recv_budget is None:
        _recv_budget = RecvBudget(RECV_BUDGET)
    return _recv_budget


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


class _SendBatch:
    '''Frames queued while another sender waits for the socket.'''
    __slots__ = ('frames', 'done', 'taken', 'error', 'retry')

    def __init__(self) -> None:
        self.frames: list[bytearray] = []
        self.done = trio.Event()
        # the flushing sender has started writing these (no way back)
        self.taken: bool = False
        self.error: BaseException|None = None
        # the flushing sender stopped before any of these went out: each
        # sender writes its own again
        self.retry: bool = False


class MsgpackTransport:
    '''
    Sends and receives protocol messages over one byte stream. Until
    `authenticated()` is called it accepts only handshake-sized frames.
    '''

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.max_msg_size: int = PREAUTH_MAX_MSG_SIZE
        # a sender is waiting for the socket to take the rest of its frame
        self._flushing: bool = False
        # frames of other senders queued meanwhile, written as one batch
        self._queued: _SendBatch|None = None
        self._spare_buf: bytearray|None = None
        # whether the write being flushed has put any byte out yet
        self._wrote: bool = False
        self._buf: bytes = b''
        self._pos: int = 0
        self.laddr, self.raddr = self._addrs()

    def _addrs(self) -> tuple[Any, Any]:
        raise NotImplementedError

    # -- send --
    async def send(self, msg: Any, schedule: bool = True) -> None:
        '''
        Send one message. `schedule=False` (the runtime's own one-per-call
        messages, e.g. `Start`, `StartAck`, `Return`) keeps the send a
        cancellation point but not a schedule point, so a call's messages
        cost no scheduler passes; what users send always is one.
        '''
        codec = _ctxvar_MsgCodec.get()
        # the last fully written frame's buffer is reused (one allocation
        # less per message); taken while in use, so a concurrent sender
        # makes its own
        frame = self._spare_buf or bytearray(_PREFIX_SIZE)
        self._spare_buf = None
        codec.encode_into(msg, frame, _PREFIX_SIZE)
        size = len(frame) - _PREFIX_SIZE
        if size > self.max_msg_size:
            raise FrameTooLarge(
                f'Refusing to send a {size} byte message; '
                f'the limit is {self.max_msg_size} bytes'
            )
        _PREFIX.pack_into(frame, 0, size)

        # every send is a schedule point before the write (a cancelled
        # sender sends nothing) and another one after it, as trio's own
        # `send_all()` has: tasks started just before a send run before
        # the sender's next step (e.g. `MsgStream.subscribe()` consumers
        # before the sender's first `receive()`), and a tight send loop
        # starves nobody
        if schedule:
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        if await self._write(frame) and schedule:
            # the frame is out: a cancellation now must not look like a
            # failed send
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _write(self, frame: bytearray) -> bool:
        '''
        Put `frame` on the wire; True when the kernel took it at once
        (no schedule point passed).
        '''
        if self._flushing:
            # a sender waits for the socket to take its frame: queue ours
            # behind it; it writes all that queued up in one go
            await self._ride(frame)
            return False
        # Fast path: when nobody else is sending, write straight to the
        # socket; waiting for writability first would cost another
        # syscall and scheduler passes even when the kernel takes the
        # whole frame at once.
        sent = self._write_some(frame)
        if sent < len(frame):
            await self._flush(memoryview(frame)[sent:], started=sent > 0)
            return False
        if sent <= _CHUNK:
            self._spare_buf = frame
        return True

    def _write_some(self, data: Any) -> int:
        fd = self.stream.socket.fileno()
        if fd < 0:
            raise trio.ClosedResourceError('the transport was closed')
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0

    async def _write_all(self, data: memoryview) -> None:
        '''Write all of `data`, waiting for the socket as needed; `self._wrote` says whether any went out.'''
        while data:
            await trio.lowlevel.wait_writable(self.stream.socket)
            sent = self._write_some(data)
            if sent:
                self._wrote = True
                data = data[sent:]

    async def _flush(self, rest: memoryview, started: bool) -> None:
        '''
        Write `rest` (the part of our frame the kernel did not take; some
        of it went out already if `started`), then every batch of frames
        other senders queued meanwhile, one write per batch as far as the
        kernel takes it.
        '''
        self._flushing = True
        self._wrote = started
        batch: _SendBatch|None = None
        try:
            await self._write_all(rest)
            while self._queued is not None:
                batch, self._queued = self._queued, None
                batch.taken = True
                self._wrote = False
                await self._write_all(memoryview(b''.join(batch.frames)))
                batch.done.set()
                batch = None
        except BaseException as err:
            # what was being written when we stopped: nothing of it went
            # out, so the stream is sound and the frames queued behind us
            # are sent by their own senders; a frame cut short leaves it
            # unusable for them all
            intact = not self._wrote
            for failed in (batch, self._queued):
                if failed is None:
                    continue
                if intact:
                    failed.retry = True
                else:
                    failed.error = err
                failed.done.set()
            self._queued = None
            raise
        finally:
            self._flushing = False

    async def _ride(self, frame: bytearray) -> None:
        '''Have the flushing sender write `frame` with its next batch.'''
        batch = self._queued
        if batch is None:
            batch = self._queued = _SendBatch()
        batch.frames.append(frame)
        try:
            await batch.done.wait()
        except trio.Cancelled:
            if not batch.taken:
                # not written yet, nor will it be: a cancelled send sends
                # nothing (taken, it goes out whole: the stream stays sound)
                batch.frames.remove(frame)
            raise
        if batch.retry:
            # the flushing sender stopped before writing any of it
            await self._write(frame)
        elif batch.error is not None:
            raise trio.BrokenResourceError(
                f'the write of the frames queued with this one failed: '
                f'{batch.error!r}'
            ) from batch.error

    def authenticated(self) -> None:
        '''The peer proved itself: lift the frame limit to the configured one.'''
        self.max_msg_size = MAX_MSG_SIZE

    # -- receive --
    async def _fill(self, needed: int) -> None:
        '''Make at least `needed` unread bytes available in the buffer.'''
        have = len(self._buf) - self._pos
        if needed > _CHUNK:
            await self._fill_large(needed, have)
            return
        parts: list[bytes] = [self._buf[self._pos:]] if have else []
        while have < needed:
            chunk = await self.stream.receive_some(_CHUNK)
            if not chunk:
                self._raise_closed(have, needed)
            parts.append(chunk)
            have += len(chunk)
        self._buf = parts[0] if len(parts) == 1 else b''.join(parts)
        self._pos = 0

    async def _fill_large(self, needed: int, have: int) -> None:
        # grows with what arrives (a peer announcing a big frame and
        # sending nothing costs nothing) and never reads past the frame
        buf = bytearray(memoryview(self._buf)[self._pos:])
        while have < needed:
            chunk = await self.stream.receive_some(min(needed - have, _MAX_READ))
            if not chunk:
                self._raise_closed(have, needed)
            buf += chunk
            have += len(chunk)
        self._buf = buf
        self._pos = 0

    def _raise_closed(self, have: int, needed: int) -> None:
        if have == 0:
            raise PeerClosed('peer closed the connection', clean=True)
        raise PeerClosed(
            f'peer closed the connection mid-frame ({have}/{needed} bytes)',
            clean=False,
        )

    async def _next_frame(self) -> tuple[memoryview, int]:
        '''The next frame's body and the budget it holds (release it after decoding).'''
        if len(self._buf) - self._pos < _PREFIX_SIZE:
            await self._fill(_PREFIX_SIZE)
        (size,) = _PREFIX.unpack_from(self._buf, self._pos)
        if size > self.max_msg_size:
            raise FrameTooLarge(
                f'Peer announced a {size} byte frame; '
                f'the limit is {self.max_msg_size} bytes'
            )
        reserved = 0
        if len(self._buf) - self._pos < _PREFIX_SIZE + size:
            if size > _CHUNK:
                budget = recv_budget()
                await budget.acquire(size)
                reserved = size
                try:
                    await self._fill(_PREFIX_SIZE + size)
                except BaseException:
                    budget.release(size)
                    raise
            else:
                await self._fill(_PREFIX_SIZE + size)
        start = self._pos + _PREFIX_SIZE
        end = start + size
        self._pos = end
        return memoryview(self._buf)[start:end], reserved

    def recv_ready(self) -> Any:
        '''
        The next message if its whole frame has arrived already, else None,
        without waiting: a burst of frames read in one chunk is decoded in
        a plain loop. Anything unusual (a frame still arriving or too
        large) is left to `recv()`.
        '''
        buf, pos = self._buf, self._pos
        if len(buf) - pos < _PREFIX_SIZE:
            return None
        (size,) = _PREFIX.unpack_from(buf, pos)
        start = pos + _PREFIX_SIZE
        end = start + size
        if size > self.max_msg_size or end > len(buf):
            return None
        self._pos = end
        return self._decode(memoryview(buf)[start:end], 0)

    async def recv(self) -> Any:
        frame, reserved = await self._next_frame()
        return self._decode(frame, reserved)

    def _decode(self, frame: memoryview, reserved: int) -> Any:
        try:
            return _ctxvar_MsgCodec.get().decode(frame)
        except msgspec.ValidationError as err:
            try:
                as_obj = msgspec.msgpack.decode(frame)
            except RecursionError:
                raise BadMsg(str(err), salvage_envelope(frame)) from err
            except msgspec.DecodeError:
                raise UndecodableFrame(str(err)) from err
            raise BadMsg(str(err), as_obj) from err
        except RecursionError as err:
            # the frame is intact, only nested too deeply for this stack:
            # drop just this message, say so to whoever it names
            salvaged = salvage_envelope(frame)
            what = (salvaged or {}).get('msg_type') or 'message'
            raise BadMsg(
                f'a {len(frame)} byte `{what}` whose values are nested too '
                'deeply to decode',
                salvaged,
            ) from err
        except (msgspec.DecodeError, UnicodeDecodeError) as err:
            raise UndecodableFrame(
                f'undecodable {len(frame)} byte frame: {err}'
            ) from err
        finally:
            if reserved:
                recv_budget().release(reserved)

    async def recv_with(self, dec: msgspec.msgpack.Decoder) -> Any:
        '''The next frame decoded by `dec` (the handshake's strict decoders).'''
        frame, reserved = await self._next_frame()
        try:
            return dec.decode(frame)
        except msgspec.ValidationError as err:
            raise BadMsg(str(err), None) from err
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as err:
            raise UndecodableFrame(f'undecodable {len(frame)} byte frame: {err}') from err
        finally:
            if reserved:
                recv_budget().release(reserved)

    async def aclose(self) -> None:
        await self.stream.aclose()
