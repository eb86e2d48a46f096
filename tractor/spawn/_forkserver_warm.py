'''
Imported last by the `mp_forkserver` server (`_mp.FORKSERVER_PRELOAD`),
once, before it forks anything: everything a child still loaded after
the fork on its way to serving (its process title, the `idna` codec a
TCP connect looks up) is loaded here instead, trio is run once (see
`_run_trio_once()`), then the server's objects are frozen out of the
garbage collector, so children neither scan nor copy-on-write them
(`gc.freeze()`, as recommended before forking).

Never imported anywhere else: it only has side effects.
'''
import encodings.idna  # noqa: F401  (`socket` encodes host names with it)
import gc
import socket

import trio

try:
    import setproctitle  # noqa: F401  (process actors title themselves)
except ImportError:
    pass

import tractor.spawn._mp  # noqa: F401  (the child's entry)


async def _loopback() -> None:
    # what every child does first: a TCP connect and a few bytes each
    # way; numeric addresses only, so trio resolves without a thread
    listener, = await trio.open_tcp_listeners(0, host='127.0.0.1')
    async with listener:
        port = listener.socket.getsockname()[1]
        async with await trio.open_tcp_stream('127.0.0.1', port) as client:
            async with await listener.accept() as server:
                await client.send_all(b'x')
                await server.receive_some(1)
    left, right = trio.socket.socketpair(socket.AF_UNIX)
    async with trio.SocketStream(left) as a, trio.SocketStream(right) as b:
        await a.send_all(b'x')
        await b.receive_some(1)


def _run_trio_once() -> None:
    '''
    A first `trio.run()` does one-off work (lazy imports, caches) that
    every child would otherwise redo after the fork, paying a private
    copy of each page it writes; done here, children share the result.
    Best effort: a server that cannot do it just forks colder children.
    '''
    try:
        trio.run(_loopback)
    except Exception:
        pass


_run_trio_once()
gc.collect()
gc.freeze()
