'''
Batched writes: frames that other senders queue while one sender waits for
the socket (the peer reads slower than we write) go out together, one
write per batch, in order; a sender cancelled before its batch is
written sends nothing; a write cut short fails every frame queued behind
it, one given up before any of it went out leaves them to their senders.

Transport level (a loopback TCP connection, no actors), so no backend.
'''
from __future__ import annotations

import socket

import msgspec
import pytest
import trio

from tractor.ipc._tcp import MsgpackTCPStream
from tractor.msg.types import Yield

BIG = 8 << 20   # far more than the socket buffers hold


async def connected_pair() -> tuple[MsgpackTCPStream, MsgpackTCPStream, trio.SocketListener]:
    listener = (await trio.open_tcp_listeners(0, host='127.0.0.1'))[0]
    port = listener.socket.getsockname()[1]
    client = await trio.open_tcp_stream('127.0.0.1', port)
    server = await listener.accept()
    for stream in (client, server):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 14)
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 14)
    sender, receiver = MsgpackTCPStream(client), MsgpackTCPStream(server)
    sender.authenticated()
    receiver.authenticated()
    return sender, receiver, listener


def count_flushes(transport: MsgpackTCPStream) -> list[int]:
    '''Record the size of every write the transport waits on the socket for.'''
    sizes: list[int] = []
    real = transport._write_all

    async def counting(data) -> None:
        sizes.append(len(data))
        await real(data)

    transport._write_all = counting
    return sizes


def queued(transport: MsgpackTCPStream) -> int:
    batch = transport._queued
    return 0 if batch is None else len(batch.frames)


async def recv_pld(transport: MsgpackTCPStream):
    msg = await transport.recv()
    pld = msg.pld
    return msgspec.msgpack.decode(pld) if isinstance(pld, msgspec.Raw) else pld


async def wait_until(pred) -> None:
    while not pred():
        await trio.sleep(0.001)


def test_frames_queued_behind_a_blocked_send_go_out_in_one_write():
    async def main():
        with trio.fail_after(20):
            sender, receiver, listener = await connected_pair()
            sizes = count_flushes(sender)
            sent: list[int] = []

            async def send(i: int, pld) -> None:
                await sender.send(Yield(cid='c', pld=pld))
                sent.append(i)

            async with trio.open_nursery() as tn:
                tn.start_soon(send, 0, b'x' * BIG)
                await wait_until(lambda: sender._flushing)
                for i in range(1, 11):
                    # one at a time: the order they queue in is the order
                    # they must arrive in
                    tn.start_soon(send, i, i)
                    await wait_until(lambda: queued(sender) == i)
                # nothing of the small ones went out on its own
                assert sent == []
                got = []
                for _ in range(11):
                    got.append(await recv_pld(receiver))
            assert got[0] == b'x' * BIG
            assert got[1:] == list(range(1, 11))
            assert sorted(sent) == list(range(11))
            # the rest of the big frame, then all ten small frames at once
            assert len(sizes) == 2
            await sender.aclose()
            await receiver.aclose()
            await listener.aclose()

    trio.run(main)


def test_cancelled_queued_send_sends_nothing():
    async def main():
        with trio.fail_after(20):
            sender, receiver, listener = await connected_pair()
            async with trio.open_nursery() as tn:
                tn.start_soon(sender.send, Yield(cid='c', pld=b'x' * BIG))
                await wait_until(lambda: sender._flushing)
                tn.start_soon(sender.send, Yield(cid='c', pld='first'))
                doomed = trio.CancelScope()

                async def cancelled_send(task_status=trio.TASK_STATUS_IGNORED):
                    with doomed:
                        task_status.started()
                        await sender.send(Yield(cid='c', pld='cancelled'))

                await tn.start(cancelled_send)
                await wait_until(lambda: queued(sender) == 2)
                tn.start_soon(sender.send, Yield(cid='c', pld='last'))
                await wait_until(lambda: queued(sender) == 3)
                doomed.cancel()
                await wait_until(lambda: queued(sender) == 2)
                got = [await recv_pld(receiver) for _ in range(3)]
            assert got[1:] == ['first', 'last']
            with trio.move_on_after(0.2):
                extra = await receiver.recv()
                pytest.fail(f'a cancelled send went out: {extra!r}')
            await sender.aclose()
            await receiver.aclose()
            await listener.aclose()

    trio.run(main)


def test_failed_write_fails_the_queued_sends():
    async def main():
        with trio.fail_after(20):
            sender, receiver, listener = await connected_pair()
            errors: list[BaseException] = []

            async def send(pld) -> None:
                try:
                    await sender.send(Yield(cid='c', pld=pld))
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as err:
                    errors.append(err)

            async with trio.open_nursery() as tn:
                tn.start_soon(send, b'x' * BIG)
                await wait_until(lambda: sender._flushing)
                for i in range(3):
                    tn.start_soon(send, i)
                await wait_until(lambda: queued(sender) == 3)
                # the peer goes away without reading
                receiver.stream.socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00',
                )
                await receiver.aclose()
            # the blocked sender and the three queued behind it all fail
            assert len(errors) == 4
            assert not sender._flushing and sender._queued is None
            await sender.aclose()
            await listener.aclose()

    trio.run(main)


def test_queued_sends_go_out_when_the_blocked_sender_gives_up_unwritten():
    '''
    The sender the others queued behind is cancelled before any byte of
    its frame went out: the stream is sound, so the queued frames are
    sent anyway (by their own senders), and the cancelled one is not.
    '''
    async def main():
        with trio.fail_after(20):
            sender, receiver, listener = await connected_pair()
            real_write_some = sender._write_some
            full = True

            def write_some(data) -> int:
                # the kernel's buffer is full while `full` holds
                return 0 if full else real_write_some(data)

            sender._write_some = write_some
            async with trio.open_nursery() as tn:
                blocked = trio.CancelScope()
                gave_up = trio.Event()

                async def blocked_send() -> None:
                    with blocked:
                        await sender.send(Yield(cid='c', pld='never'))
                    gave_up.set()

                tn.start_soon(blocked_send)
                await wait_until(lambda: sender._flushing)
                for i in range(3):
                    tn.start_soon(sender.send, Yield(cid='c', pld=i))
                    await wait_until(lambda: queued(sender) == i + 1)
                blocked.cancel()
                await gave_up.wait()
                # the queued ones now send their own (one of them blocked
                # in turn until the socket takes data again)
                full = False
                got = [await recv_pld(receiver) for _ in range(3)]
            assert sorted(got) == [0, 1, 2]
            assert not sender._flushing and sender._queued is None
            with trio.move_on_after(0.2):
                extra = await recv_pld(receiver)
                pytest.fail(f'the cancelled send went out: {extra!r}')
            await sender.aclose()
            await receiver.aclose()
            await listener.aclose()

    trio.run(main)
