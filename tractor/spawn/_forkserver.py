'''
The `mp_forkserver` backend's server: started once per process tree
(nested actors adopt their root's), stopped and reaped at exit, and
asked for each child from trio (see "asking the forkserver from trio").
'''
from __future__ import annotations

import array
import atexit
import io
import multiprocessing as mp
import os
import signal
import socket
import struct
import sys
import threading
import time
from multiprocessing import (
    connection as _mp_connection,
    context as _mp_context,
    spawn as _mp_spawn,
    forkserver as _mp_forkserver,
    popen_forkserver as _mp_popen_forkserver,
    process as _mp_process,
    reduction as _mp_reduction,
    resource_tracker as _mp_resource_tracker,
    util as _mp_util,
)
from typing import Any, Callable

import trio

# imported once by the forkserver so each fork starts warm; `__main__`
# first, as the stdlib default does, so children skip re-importing it
FORKSERVER_PRELOAD: list[str] = [
    '__main__',
    'trio',
    'msgspec',
    'tractor',
    'tractor.spawn._entry',
    # the child's entry, and a spare's
    'tractor.spawn._mp_child',
    'tractor.spawn._forkserver_spares',
    # last: what children still imported after the fork, then gc.freeze()
    'tractor.spawn._forkserver_warm',
]

# Nested actors send their spawn requests to the forkserver of the root
# process instead of starting one each (see `ai/mp-backends.md`). Read in
# the process that spawns; `False` only exists to measure the other way.
SHARE_FORKSERVER: bool = True

# bound on waiting for the forkserver to exit at interpreter exit
FORKSERVER_STOP_TIMEOUT: float = 2.0

# set in the thread starting a child spawned with
# `inherit_parent_main=False`: multiprocessing must not tell it how to
# re-import our `__main__` (it would, for every `spawn` child)
_starting: threading.local = threading.local()
_stdlib_preparation_data = _mp_spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    data = _stdlib_preparation_data(name)
    if getattr(_starting, 'without_main', False):
        data.pop('init_main_from_name', None)
        data.pop('init_main_from_path', None)
    return data


# looked up through the module by the `spawn` and `forkserver` popens at
# every start
_mp_spawn.get_preparation_data = _preparation_data

# (address, authkey) of a forkserver this process did not start but was
# handed by its parent; `None` while we use (or will start) our own
_adopted_forkserver: tuple[Any, bytes|None]|None = None
_atexit_lock = threading.Lock()
# the exit hooks registered so far (each once per interpreter)
_atexit_hooks: set[Callable[[], None]] = set()

# -- the forkserver --

def _forkserver_info() -> tuple[Any, bytes|None]:
    '''
    Make sure a forkserver this process may use is running; return what
    a child needs to use the same one. Blocking: call it in a thread.
    '''
    if _adopted_forkserver is not None:
        return _adopted_forkserver
    server = _mp_forkserver._forkserver
    # the preload list only matters when the server (re)starts
    server.set_forkserver_preload(FORKSERVER_PRELOAD)
    server.ensure_running()
    _register_forkserver_stop()
    # no auth key before Python 3.14
    return server._forkserver_address, getattr(server, '_forkserver_authkey', None)


def _in_subinterpreter() -> bool:
    try:
        import _interpreters
    except ImportError:
        return False
    return _interpreters.get_current()[0] != _interpreters.get_main()[0]


def _at_exit_once(hook: Callable[[], None]) -> None:
    with _atexit_lock:
        if hook not in _atexit_hooks:
            atexit.register(hook)
            _atexit_hooks.add(hook)


def _register_tracker_stop() -> None:
    _at_exit_once(_stop_resource_tracker)


def _reap_bounded(pid: int) -> None:
    '''
    Reap child `pid`, which was just told to exit; SIGKILL it if it has not
    within `FORKSERVER_STOP_TIMEOUT`. Blocking (runs at exit).
    '''
    deadline = time.monotonic() + FORKSERVER_STOP_TIMEOUT
    try:
        while os.waitpid(pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.01)
    except ChildProcessError:
        pass


def _stop_resource_tracker() -> None:
    '''
    Stop and reap the resource tracker this sub-interpreter started (its
    `atexit` runs when the interpreter is destroyed). A process that ends
    takes its tracker with it; an interpreter that ends leaves it behind
    as a zombie child of the process, since nothing else would reap it.
    Bounded like `_stop_forkserver`.
    '''
    tracker = _mp_resource_tracker._resource_tracker
    with tracker._lock:
        fd, pid = tracker._fd, tracker._pid
        if fd is None or pid is None:
            return
        tracker._fd = tracker._pid = None
        # EOF on its "alive" pipe makes it clean up and exit
        os.close(fd)
    _reap_bounded(pid)


def _register_forkserver_stop() -> None:
    _at_exit_once(_stop_forkserver)


def _stop_forkserver() -> None:
    '''
    Stop the forkserver this process started (at exit): close our end of
    its "alive" pipe, which makes it exit once no child of it holds one
    either, and reap it; bounded, since an abandoned child keeps it alive.
    '''
    server = _mp_forkserver._forkserver
    with server._lock:
        pid = server._forkserver_pid
        if pid is None:
            return
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
        _reap_bounded(pid)
        address = server._forkserver_address
        if (
            isinstance(address, str)
            and not _mp_util.is_abstract_socket_namespace(address)
        ):
            try:
                os.unlink(address)
            except FileNotFoundError:
                pass
        server._forkserver_pid = None
        server._forkserver_address = None
        if hasattr(server, '_forkserver_authkey'):
            server._forkserver_authkey = None


def _adopt_forkserver(info: tuple[Any, bytes|None]) -> None:
    '''
    In a forkserver child: send our own spawn requests to the server that
    forked us. It inherited the write end of the server's "alive" pipe
    already; what it lacks is the auth key, and `ensure_running()` must
    not start a server of its own (nor `waitpid()` one that is not its
    child).
    '''
    global _adopted_forkserver
    address, authkey = info
    server = _mp_forkserver._forkserver
    server._forkserver_address = address
    if authkey is not None:
        server._forkserver_authkey = authkey
    # an instance attribute shadows the method `connect_to_new_process`
    # calls; the resource tracker we inherited still has to be checked
    server.ensure_running = _mp_resource_tracker.ensure_running
    _adopted_forkserver = info

# -- asking the forkserver from trio --
#
# multiprocessing asks its forkserver for a child with blocking calls (a
# connect, the HMAC challenge both ways, the fds, the pid), which we ran
# in a worker thread: two thread hops per spawn (~0.5 ms), and in a
# burst each step waited for the GIL and a CPU while the server, which
# serves one request at a time, waited with it (4-26 ms per request
# measured, 0.5 ms alone). So once the server runs we ask it from trio:
# the same exchange, the same authentication (its challenge answered
# with its key, its answer to ours verified before the fds go), no
# thread; ours goes out with our answer, one round trip less. Written
# against the protocol of the 3.14 server; other versions keep the
# thread.

_ASYNC_REQUESTS: bool = sys.version_info[:2] == (3, 14)

# requests in flight at once: the server takes one at a time anyway, and
# its listen backlog must never fill (a non-blocking UNIX connect then
# fails instead of waiting)
_MAX_REQUESTS: int = 16
_requests: trio.lowlevel.RunVar = trio.lowlevel.RunVar('_mp_fs_requests')

# the challenge messages of `multiprocessing.connection` are short
_MAX_AUTH_MSG: int = 256


class _DeferredPopen(_mp_popen_forkserver.Popen):
    '''
    multiprocessing's forkserver `Popen` without its round trip with the
    server: `_launch()` only pickles what the child will read and opens
    the two pipes; `_request_fork()` then asks the server for the fork.
    '''

    def _launch(self, process_obj: Any) -> None:
        prep_data = _mp_spawn.get_preparation_data(process_obj._name)
        buf = io.BytesIO()
        # pickling records the fds to hand over (`duplicate_for_child()`)
        _mp_context.set_spawning_popen(self)
        try:
            _mp_reduction.dump(prep_data, buf)
            _mp_reduction.dump(process_obj, buf)
        finally:
            _mp_context.set_spawning_popen(None)
        self._data = buf.getvalue()
        # status: the server writes the child's pid, later its exit code
        self.sentinel, self._status_w = os.pipe()
        # data: the child reads `_data`; our duplicate of the write end,
        # held while we live, is how it can tell we died
        self._data_r, self._data_w = os.pipe()
        parent_w = os.dup(self._data_w)
        self.finalizer = _mp_util.Finalize(
            self, _mp_util.close_fds, (parent_w, self.sentinel),
        )
        # known once the server forked
        self.pid = None

    def poll(self, flag: int = os.WNOHANG) -> int|None:
        # until we read the pid off the status pipe, what is there is the
        # pid, not an exit code (multiprocessing polls every started
        # process at each start)
        if self.pid is None:
            return None
        return super().poll(flag)


class _DeferredProcess(_mp_context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _DeferredPopen:
        return _DeferredPopen(process_obj)


async def _recv_exactly(sock: Any, count: int) -> bytes:
    data = b''
    while len(data) < count:
        chunk = await sock.recv(count - len(data))
        if not chunk:
            raise EOFError('the forkserver closed the connection')
        data += chunk
    return data


async def _send_msgs(sock: Any, *payloads: bytes) -> None:
    # `Connection.send_bytes()`'s frame: a big-endian length, the bytes
    data = b''.join(struct.pack('!i', len(p)) + p for p in payloads)
    while data:
        data = data[await sock.send(data):]


async def _recv_msg(sock: Any) -> bytes:
    size, = struct.unpack('!i', await _recv_exactly(sock, 4))
    if not 0 <= size <= _MAX_AUTH_MSG:
        raise mp.AuthenticationError(f'bad message length from the forkserver: {size}')
    return await _recv_exactly(sock, size)


async def _authenticate(sock: Any, authkey: bytes) -> None:
    '''
    Both halves of `multiprocessing.connection`'s challenge, as the
    server expects them: we prove we hold its key, then it proves it
    does; its MAC helpers do the cryptography. Our challenge goes out
    with our answer (the server reads one exact frame at a time, so it
    waits in its buffer): one round trip less for a server that is
    single-threaded and waits on us.
    '''
    challenge = await _recv_msg(sock)
    if not challenge.startswith(_mp_connection._CHALLENGE):
        raise mp.AuthenticationError('the forkserver sent no challenge')
    challenge = challenge[len(_mp_connection._CHALLENGE):]
    ours = b'{sha256}' + os.urandom(_mp_connection.MESSAGE_LENGTH)
    await _send_msgs(
        sock,
        _mp_connection._create_response(authkey, challenge),
        _mp_connection._CHALLENGE + ours,
    )
    if await _recv_msg(sock) != _mp_connection._WELCOME:
        raise mp.AuthenticationError('the forkserver rejected our key')
    try:
        _mp_connection._verify_challenge(authkey, ours, await _recv_msg(sock))
    except mp.AuthenticationError:
        await _send_msgs(sock, _mp_connection._FAILURE)
        raise
    await _send_msgs(sock, _mp_connection._WELCOME)


async def _request_fork(popen: _DeferredPopen, address: str, authkey: bytes) -> int:
    '''
    What `ForkServer.connect_to_new_process()` and `Popen._launch()` do
    after pickling, from trio: hand the server the child's fds, write
    the child its data, read its pid.
    '''
    server = _mp_forkserver._forkserver
    fds = [
        popen._data_r,
        popen._status_w,
        server._forkserver_alive_fd,
        _mp_resource_tracker.getfd(),
        *popen._fds,
    ]
    if len(fds) >= _mp_forkserver.MAXFDS_TO_SEND:
        raise ValueError('too many fds')
    try:
        with trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            await sock.connect(address)
            if authkey:
                await _authenticate(sock, authkey)
            await sock.sendmsg(
                [bytes([len(fds) % 256])],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))],
            )
            # the server acknowledges the fds before it forks
            if await _recv_exactly(sock, 1) != b'A':
                raise RuntimeError('the forkserver did not acknowledge the fds')
    finally:
        # the server (and so the child) has its own copies now
        os.close(popen._data_r)
        os.close(popen._status_w)

    # small (a few KiB), and the child reads it as soon as it is forked
    data = memoryview(popen._data)
    try:
        os.set_blocking(popen._data_w, False)
        while data:
            try:
                data = data[os.write(popen._data_w, data):]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(popen._data_w)
    finally:
        data.release()
        popen._data = None
        os.close(popen._data_w)
        popen._data_w = None

    # the server writes the pid (8 bytes, one write) once it forked
    await trio.lowlevel.wait_readable(popen.sentinel)
    return _mp_forkserver.read_signed(popen.sentinel)


def _server_id() -> Any:
    '''The server that forks for us now (a spare of a replaced one is stale).'''
    return _adopted_forkserver or _mp_forkserver._forkserver._forkserver_pid


def _server_running() -> bool:
    return (
        _adopted_forkserver is not None
        or _mp_forkserver._forkserver._forkserver_pid is not None
    )


async def _fork(
    process: dict[str, Any],
    info: tuple[Any, bytes|None],
    inherit_parent_main: bool = True,
) -> Any:
    '''
    Have the running forkserver fork the `multiprocessing.Process` of
    `process` (its keyword arguments); return it started.
    '''
    address, authkey = info
    proc = _DeferredProcess(**process)
    try:
        limit = _requests.get()
    except LookupError:
        limit = trio.Semaphore(_MAX_REQUESTS)
        _requests.set(limit)
    # uncancellable, like the thread it replaces: once the server may
    # have forked, the child must be handed back to be supervised
    with trio.CancelScope(shield=True):
        async with limit:
            _starting.without_main = not inherit_parent_main
            try:
                proc.start()
            finally:
                _starting.without_main = False
            popen = proc._popen
            try:
                popen.pid = await _request_fork(popen, address, authkey)
            except BaseException:
                # no child to supervise: forget the process entirely
                _mp_process._children.discard(proc)
                if popen._data_w is not None:
                    os.close(popen._data_w)
                popen.finalizer()
                raise
    return proc


async def _ready_forkserver() -> tuple[Any, bytes|None]:
    if _in_subinterpreter():
        _register_tracker_stop()
    # starting the server blocks (in a thread, once); checking on it not
    if _server_running():
        return _forkserver_info()
    return await trio.to_thread.run_sync(_forkserver_info)
