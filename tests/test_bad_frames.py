'''
Robustness of an actor's IPC server against malformed input from raw
(non-tractor) socket clients: garbage bytes, absurd length prefixes,
well-framed msgpack that is not a protocol message. The actor must
drop such connections and keep serving its real peers.

Wire format (see the protocol spec): each message is a little-endian
u32 length prefix followed by a msgpack map whose first key is
`msg_type`; every connection starts with the authentication exchange
(see `tractor.ipc._auth`).

'''
import os
import struct

import msgspec
import trio
import tractor
from tractor._testing import nursery_kwargs
from tractor._testing.raw_peer import RawPeer
from tractor.ipc._auth import current_secret


# ---- functions run inside child actors ----

async def accept_addrs() -> list:
    return [list(addr) for addr in tractor.current_actor().accept_addrs]


async def echo(value):
    return value


# ---- helpers ----

def frame(body: bytes) -> bytes:
    return struct.pack('<I', len(body)) + body


async def open_raw(tpt_proto: str, addr) -> trio.SocketStream:
    if tpt_proto == 'tcp':
        host, port = addr
        return await trio.open_tcp_stream(host, port)
    elif tpt_proto == 'uds':
        sockdir, filename = addr
        return await trio.open_unix_socket(os.path.join(sockdir, filename))
    raise ValueError(f'unsupported transport {tpt_proto!r}')


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    '''
    Read until the peer closes (EOF) or resets the connection; return
    whatever arrived before that.

    '''
    received = bytearray()
    while True:
        try:
            chunk = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return bytes(received)
        if not chunk:
            return bytes(received)
        received += chunk


async def expect_dropped(
    stream: trio.SocketStream,
    timeout: float,
) -> bytes:
    with trio.fail_after(timeout):
        data = await read_until_closed(stream)
    await stream.aclose()
    return data


async def get_daemon_addr(portal: tractor.Portal) -> tuple:
    addrs = await portal.run(accept_addrs)
    assert addrs
    return tuple(addrs[0])


def test_garbage_and_huge_prefix(
    reg_addr,
    start_method,
    tpt_proto,
):
    '''
    Random bytes, an undecodable frame, a 2 GiB length prefix and a
    valid frame that is no protocol message: every such connection is
    dropped and the actor keeps serving.

    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'target',
                    enable_modules=[__name__],
                )
                addr = await get_daemon_addr(portal)

                async def garbage_then_eof():
                    # 64 random bytes: the prefix is random too, so
                    # also half-close to make the server hit EOF
                    stream = await open_raw(tpt_proto, addr)
                    await stream.send_all(os.urandom(64))
                    await stream.send_eof()
                    await expect_dropped(stream, 5)

                async def undecodable_frame():
                    # correctly framed but the body is not msgpack that
                    # decodes to a message: fatal during the handshake
                    stream = await open_raw(tpt_proto, addr)
                    await stream.send_all(frame(b'\xc1' + os.urandom(59)))
                    await expect_dropped(stream, 5)

                async def huge_prefix_then_eof():
                    stream = await open_raw(tpt_proto, addr)
                    await stream.send_all(
                        struct.pack('<I', 2**31) + b'abcdefgh'
                    )
                    await stream.send_eof()
                    await expect_dropped(stream, 5)

                async def not_a_message():
                    stream = await open_raw(tpt_proto, addr)
                    await stream.send_all(frame(msgspec.msgpack.encode(
                        {'hello': 'world', 'n': [1, 2, 3]}
                    )))
                    await expect_dropped(stream, 5)

                async def unknown_msg_type():
                    stream = await open_raw(tpt_proto, addr)
                    await stream.send_all(frame(msgspec.msgpack.encode(
                        {'msg_type': 'NotAMessage', 'cid': 'x'}
                    )))
                    await expect_dropped(stream, 5)

                async with trio.open_nursery() as tn:
                    tn.start_soon(garbage_then_eof)
                    tn.start_soon(undecodable_frame)
                    tn.start_soon(huge_prefix_then_eof)
                    tn.start_soon(not_a_message)
                    tn.start_soon(unknown_msg_type)

                # the actor shrugged it all off
                assert await portal.run(echo, value='still here') == (
                    'still here'
                )
                await portal.cancel_actor()

    trio.run(main)


def test_huge_prefix_without_eof_is_dropped(
    reg_addr,
    start_method,
    tpt_proto,
):
    '''
    A 2 GiB length prefix from a peer that then goes quiet must not
    pin the connection forever (at the latest the handshake timeout,
    ~10 s, drops it); meanwhile the actor serves normally.

    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'target',
                    enable_modules=[__name__],
                )
                addr = await get_daemon_addr(portal)

                stream = await open_raw(tpt_proto, addr)
                await stream.send_all(struct.pack('<I', 2**31) + b'xyz')

                async with trio.open_nursery() as tn:
                    tn.start_soon(expect_dropped, stream, 13)
                    # unaffected while the bad peer hangs around
                    for i in range(3):
                        assert await portal.run(echo, value=i) == i

                assert await portal.run(echo, value='ok') == 'ok'
                await portal.cancel_actor()

    trio.run(main)


def test_raw_handshake_then_garbage(
    reg_addr,
    start_method,
    tpt_proto,
):
    '''
    A raw client completing the authenticated handshake by hand gets the
    actor's own `Aid` back (positive control for the framing used above);
    garbage frames after the handshake then get the connection dropped
    without harming the actor.

    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'shaker',
                    enable_modules=[__name__],
                )
                addr = await get_daemon_addr(portal)

                peer = await RawPeer.connect(addr)
                with trio.fail_after(5):
                    aid = await peer.authenticate(current_secret().value)
                assert aid is not None, 'the actor refused the right secret'
                assert aid['msg_type'] == 'Aid'
                assert aid['name'] == 'shaker'
                assert aid['uuid']

                # now a stream of undecodable frames: a few are skipped,
                # then the transport gives up on this peer
                try:
                    for _ in range(8):
                        await peer.send_raw(frame(b'\xc1' * 16))
                except trio.BrokenResourceError:
                    pass  # already dropped by the server: fine
                with trio.fail_after(5):
                    await peer.wait_closed()
                await peer.aclose()

                assert await portal.run(echo, value=[1, 2]) == [1, 2]
                await portal.cancel_actor()

    trio.run(main)
