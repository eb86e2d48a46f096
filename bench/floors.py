'''
The floors `run.py` measures alongside tractor's figures: what this box
(and trio) allow for the same work, each in the same run.

Besides the floor of each metric (see `run.py`), a few figures that say
why a metric sits where it does (`EXTRA_FLOORS`): the cost of one trio
schedule point, the rate of a trio memory channel between two tasks of
one process, and an RPC round trip built from plain trio with the
structure a remote call needs (a message-loop task per side, a task per
call, a memory channel to the waiting caller).
'''
from __future__ import annotations

import os
import socket
import statistics
import struct
import subprocess
import sys
import time

# extra floors printed under the table: key -> (unit, what it is)
EXTRA_FLOORS: dict[str, tuple[str, str]] = {
    'sched_point': (
        'us', 'one trio schedule point (`cancel_shielded_checkpoint()`), one task',
    ),
    'memchan_rate': (
        'msg/s', 'a trio memory channel between two tasks of one process',
    ),
    'rpc_skeleton': (
        'us', 'a call in plain trio: loop task per side, task per call, '
        'memory channel to the caller',
    ),
}


def _pss_kib(pid: int) -> int:
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def job_floors(backend: str, tpt: str) -> dict:
    import msgspec
    import trio
    out: dict[str, list[float]] = {}

    # fork of a warm process (trio imported)
    forks = []
    for _ in range(30):
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        forks.append((time.perf_counter() - start) * 1e3)
    out['fork_warm'] = [statistics.median(forks)]

    # a fresh process importing trio + msgspec
    out['fresh_proc'] = [_time_proc('import trio, msgspec') * 1e3]

    # a sub-interpreter, created and destroyed
    try:
        import _interpreters
        creates = []
        for _ in range(10):
            start = time.perf_counter()
            iid = _interpreters.create('legacy')
            _interpreters.destroy(iid)
            creates.append((time.perf_counter() - start) * 1e3)
        out['subint_create'] = [statistics.median(creates)]
        if backend == 'subint':
            out['subint_cold16'] = [_subint_cold_burst(16)]
    except ImportError:
        pass

    # msgpack encode + decode of a small stream message
    Yield = msgspec.defstruct('Yield', [('cid', str), ('pld', msgspec.Raw)], tag=True)
    enc = msgspec.msgpack.Encoder()
    dec = msgspec.msgpack.Decoder(Yield)
    pld_dec = msgspec.msgpack.Decoder()
    msg = Yield(cid='0123456789abcdef0123456789abcdef', pld=msgspec.Raw(enc.encode(12345)))
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        pld_dec.decode(dec.decode(enc.encode(msg)).pld)
    per_msg = (time.perf_counter() - start) / n
    out['msgpack_rate'] = [1 / per_msg]

    # trio socket ping-pong between two processes
    pp = _pingpong(tpt, 3000)
    out['pingpong'] = [pp * 1e6]
    out['pingpong_rate'] = [1 / pp]

    # what trio's own scheduling allows for the same work
    out['rpc_skeleton'] = [_rpc_skeleton(tpt, 3000) * 1e6]
    out.update(trio.run(_trio_costs))
    return out


def _subint_cold_burst(count: int) -> float:
    '''
    Seconds for `count` sub-interpreters, made at once on threads of
    their own, to import trio and msgspec: what a burst of `subint`
    actors from a cold root cannot beat (legacy interpreters share one
    GIL: msgspec refuses isolated ones).
    '''
    import threading
    import _interpreters

    iids = []

    def warm() -> None:
        iid = _interpreters.create('legacy')
        iids.append(iid)
        _interpreters.exec(iid, f'import sys\nsys.path[:] = {sys.path!r}\nimport trio, msgspec')

    start = time.perf_counter()
    threads = [threading.Thread(target=warm) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - start
    for iid in iids:
        _interpreters.destroy(iid)
    return took


def _time_proc(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, '-c', code], check=True)
    return time.perf_counter() - start


def _pingpong(tpt: str, rounds: int) -> float:
    async def serve(stream) -> None:
        while data := await stream.receive_some(64):
            await stream.send_all(data)

    async def ping(stream) -> float:
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            await stream.send_all(b'x')
            await stream.receive_some(64)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return _against_forked_peer(tpt, serve, ping)


def job_memfloor_subint() -> dict:
    '''PSS a legacy sub-interpreter holding trio + msgspec adds.'''
    import _interpreters
    before = _pss_kib(os.getpid())
    iid = _interpreters.create('legacy')
    _interpreters.exec(iid, f'import sys\nsys.path[:] = {sys.path!r}\nimport trio, msgspec')
    time.sleep(0.2)
    took = (_pss_kib(os.getpid()) - before) / 1024
    _interpreters.destroy(iid)
    return {'mem_subint': [took]}


async def _trio_costs() -> dict[str, list[float]]:
    import trio
    n = 50_000
    start = time.perf_counter()
    for _ in range(n):
        await trio.lowlevel.cancel_shielded_checkpoint()
    sched = (time.perf_counter() - start) / n

    send, recv = trio.open_memory_channel(64)

    async def produce() -> None:
        async with send:
            for i in range(n):
                await send.send(i)

    start = time.perf_counter()
    async with trio.open_nursery() as tn:
        tn.start_soon(produce)
        async for _ in recv:
            pass
    rate = n / (time.perf_counter() - start)
    return {'sched_point': [sched * 1e6], 'memchan_rate': [rate]}


_FRAME_PREFIX = struct.Struct('<I')


def _socket_pair(tpt: str) -> tuple[socket.socket, socket.socket]:
    if tpt == 'uds':
        return socket.socketpair(socket.AF_UNIX)
    lst = socket.socket()
    lst.bind(('127.0.0.1', 0))
    lst.listen(1)
    left = socket.create_connection(lst.getsockname())
    right, _ = lst.accept()
    lst.close()
    for sock in (left, right):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return left, right


def _against_forked_peer(tpt: str, serve, measure) -> float:
    '''
    Run `serve(stream)` in a forked process and `measure(stream)` here,
    each under its own `trio.run()` on one end of a connected socket
    pair; return what `measure` returns once the peer has exited.
    '''
    import trio
    left, right = _socket_pair(tpt)
    pid = os.fork()
    if pid == 0:
        left.close()
        try:
            trio.run(serve, trio.SocketStream(trio.socket.from_stdlib_socket(right)))
        finally:
            os._exit(0)
    right.close()

    async def client() -> float:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(left))
        try:
            return await measure(stream)
        finally:
            await stream.aclose()

    took = trio.run(client)
    os.waitpid(pid, 0)
    return took


def _rpc_skeleton(tpt: str, rounds: int) -> float:
    '''
    Median round trip of a call with a remote call's structure in plain
    trio and msgpack: the callee's loop task starts a task per request,
    which answers with an ack and a result (two frames); the caller's
    loop task hands both to the calling task through a memory channel.
    '''
    import msgspec
    import trio
    enc, dec = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder()

    def frame(obj) -> bytes:
        body = enc.encode(obj)
        return _FRAME_PREFIX.pack(len(body)) + body

    async def frames(stream):
        buf = b''
        while True:
            while len(buf) >= 4:
                (size,) = _FRAME_PREFIX.unpack_from(buf)
                if len(buf) < 4 + size:
                    break
                yield dec.decode(memoryview(buf)[4:4 + size])
                buf = buf[4 + size:]
            chunk = await stream.receive_some(1 << 16)
            if not chunk:
                return
            buf += chunk

    async def serve(stream) -> None:
        async def call(msg) -> None:
            await stream.send_all(frame({'cid': msg['cid'], 'ack': True}))
            await stream.send_all(frame({'cid': msg['cid'], 'ret': None}))

        async with trio.open_nursery() as tn:
            async for msg in frames(stream):
                tn.start_soon(call, msg)

    async def calls(stream) -> float:
        waiting: dict[int, trio.MemorySendChannel] = {}

        async def loop() -> None:
            async for msg in frames(stream):
                waiting[msg['cid']].send_nowait(msg)

        times = []
        async with trio.open_nursery() as tn:
            tn.start_soon(loop)
            for cid in range(rounds):
                start = time.perf_counter()
                waiting[cid], replies = trio.open_memory_channel(64)
                await stream.send_all(frame({'cid': cid, 'fn': 'noop'}))
                await replies.receive()
                await replies.receive()
                del waiting[cid]
                times.append(time.perf_counter() - start)
            tn.cancel_scope.cancel()
        return statistics.median(times)

    return _against_forked_peer(tpt, serve, calls)
