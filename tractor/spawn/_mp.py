'''
The `multiprocessing` backends: `mp_spawn` (a fresh interpreter per
actor) and `mp_forkserver` (a fork of a long-lived server process that
already imported tractor and has never run trio).

Either way the child runs `_mp_child_main()`, which boots the very same
runtime as the `trio` backend's `python -m tractor._child` (same
connect-back handshake, same `SpawnSpec`). The parent's `__main__` is
re-imported as `__mp_main__` by multiprocessing itself, which the
runtime detects and does not replay a second time.
'''
from __future__ import annotations

import array
import atexit
import io
import multiprocessing as mp
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import types
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
from typing import Any

import trio

from tractor import log
from tractor.ipc._auth import Secret
from ._entry import _actor_child_main

from ._reason import (
    ReasonPipe,
    describe_with_reason,
    write_reason,
)
from ._spawn import (
    ChildHandle,
    SpawnArgs,
)
from ._trio import describe_returncode

logger = log.get_logger()

# what multiprocessing reports as the exit code of a forkserver child when
# the forkserver went away without reporting one
_FORKSERVER_GONE: int = 255
# our stand-in once an orphaned child ended: its status went with its parent
_UNKNOWN_EXIT: int = -256

# imported once by the forkserver so each fork starts warm; `__main__`
# first, as the stdlib default does, so children skip re-importing it
FORKSERVER_PRELOAD: list[str] = [
    '__main__',
    'trio',
    'msgspec',
    'tractor',
    'tractor.spawn._entry',
    'tractor.spawn._mp',
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
_atexit_registered: bool = False
_tracker_stop_registered: bool = False


class MpProcessHandle(ChildHandle):
    '''A child started through a `multiprocessing` context.'''

    def __init__(
        self,
        proc: Any,
        forkserver: bool = False,
        reason: ReasonPipe|None = None,
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        # where the child reports why it failed (see `_reason`)
        self._reason = reason
        self._returncode: int|None = None
        self._closed: bool = False
        # set while some task waits on the sentinel: trio allows only one
        # waiter per fd, the others wait for it to finish
        self._watcher_done: trio.Event|None = None
        # a forkserver child is not our child: it reports its exit through
        # the forkserver, so we also hold a pidfd to follow it should the
        # forkserver die first (Linux; `None` elsewhere)
        self._pidfd: int|None = None
        self._orphaned: bool = False
        if forkserver and hasattr(os, 'pidfd_open'):
            try:
                self._pidfd = os.pidfd_open(proc.pid)
            except OSError:
                pass

    def _pidfd_exited(self) -> bool:
        readable, _, _ = select.select([self._pidfd], [], [], 0)
        return bool(readable)

    def _poll(self) -> int|None:
        if self._returncode is not None or self._closed:
            return self._returncode
        if self._orphaned:
            if self._pidfd_exited():
                self._returncode = _UNKNOWN_EXIT
            return self._returncode
        # reaps a zombie (spawn) or reads the forkserver's report
        code = self.proc.exitcode
        if (
            code == _FORKSERVER_GONE
            and self._pidfd is not None
            and not self._pidfd_exited()
        ):
            # no report from the child: the forkserver died, and the child
            # runs on as an orphan we follow through its pidfd
            self._orphaned = True
            logger.warning(
                f'The forkserver of actor {self.proc.name!r} (pid {self.pid}) '
                'died; following the child directly'
            )
            return None
        self._returncode = code
        return code

    async def wait(self) -> None:
        while self._poll() is None:
            if self._watcher_done is not None:
                await self._watcher_done.wait()
                continue
            done = self._watcher_done = trio.Event()
            try:
                await trio.lowlevel.wait_readable(
                    self._pidfd if self._orphaned else self.proc.sentinel
                )
                # the sentinel fires while the child is exiting; it can be
                # reaped a moment later
                while self._poll() is None and not self._orphaned:
                    await trio.sleep(0.005)
            finally:
                self._watcher_done = None
                done.set()

    def alive(self) -> bool:
        return self._poll() is None

    def _signal(self, signum: int) -> None:
        if not self.alive():
            return
        try:
            if self._orphaned:
                signal.pidfd_send_signal(self._pidfd, signum)
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            pass  # it just exited

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def describe_exit(self) -> str:
        code = self._poll()
        if self._orphaned:
            if code is None:
                return 'is still running, orphaned by the death of its forkserver'
            return 'ended after its forkserver died (exit status unknown)'
        how = describe_returncode(code)
        if code is None or self._reason is None:
            return how
        return describe_with_reason(how, self._reason.read())

    def exited_cleanly(self) -> bool:
        return self._poll() == 0 and not self._orphaned

    async def release(self) -> None:
        # frees the sentinel (and the data pipe's duplicate for a
        # forkserver child); impossible while the child still runs
        if self._poll() is None or self._closed or self._watcher_done:
            return
        if self._reason is not None:
            # keeps what was read, for later `describe_exit()` calls
            self._reason.close()
        if self._pidfd is not None:
            trio.lowlevel.notify_closing(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        trio.lowlevel.notify_closing(self.proc.sentinel)
        self.proc.close()
        self._closed = True


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


def _register_tracker_stop() -> None:
    global _tracker_stop_registered
    with _atexit_lock:
        if not _tracker_stop_registered:
            atexit.register(_stop_resource_tracker)
            _tracker_stop_registered = True


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
    global _atexit_registered
    with _atexit_lock:
        if not _atexit_registered:
            atexit.register(_stop_forkserver)
            _atexit_registered = True


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


# -- the child --

def _mp_child_main(
    uid: tuple[str, str],
    parent_addr: Any,
    loglevel: str|None,
    infect_asyncio: bool,
    spawn_method: str,
    forkserver_info: tuple[Any, bytes|None]|None,
    secret: Secret,
    reason_writer: Any = None,
    inherit_parent_main: bool = True,
) -> None:
    '''
    The `multiprocessing.Process` target: run the actor's runtime; on
    failure, tell the parent why through `reason_writer` (see `_reason`).
    '''
    try:
        if forkserver_info is not None:
            _adopt_forkserver(forkserver_info)
        if not inherit_parent_main and sys.modules['__main__'].__name__ == '__mp_main__':
            # forked from a forkserver that preloaded the parent's main
            # (its top level ran there once, when the server started):
            # this child must not see it as its own `__main__`
            sys.modules['__main__'] = types.ModuleType('__main__')
        status = _actor_child_main(
            uid,
            parent_addr,
            loglevel=loglevel,
            infect_asyncio=infect_asyncio,
            spawn_method=spawn_method,
            secret=secret,
        )
    except BaseException as err:
        if reason_writer is not None:
            write_reason(reason_writer, err)
        raise
    finally:
        if reason_writer is not None and not reason_writer.closed:
            reason_writer.close()
    if status:
        # multiprocessing makes it the process's exit code
        raise SystemExit(status)


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


async def _start_forkserver_child(args: SpawnArgs) -> MpProcessHandle:
    pool = _spares_for_run()
    try:
        if pool is not None and (handle := pool.claim(args)) is not None:
            return handle
        info = await _ready_forkserver()
        reason = ReasonPipe()
        try:
            proc = await _fork(
                _process_kwargs(args, 'mp_forkserver', info, reason),
                info,
                inherit_parent_main=args.inherit_parent_main,
            )
        except BaseException:
            reason.close()
            raise
        reason.close_child_end()
        return MpProcessHandle(proc, forkserver=True, reason=reason)
    finally:
        if pool is not None:
            pool.spawned()


# -- spares: forkserver children forked and warmed ahead of a spawn --
#
# After the fork, a child still spent ~5 ms before its actor's trio
# started: the exchange with the server and the fork itself, the
# multiprocessing bootstrap, and above all a private copy of every page
# of the server's heap it writes to on the way (~1000 pages by then,
# ~3 us each here). A spare does all that ahead: forked while nothing
# else is spawning, it bootstraps, runs trio once (`warm_trio()`), then
# waits on a pipe of its own for the actor it will be. A spawn that
# finds one hands it its arguments (the same ones, secret included,
# multiprocessing would have written on the data pipe only the child
# reads) and supervises it as if it had just been forked.
#
# Per trio run of a spawning actor: `SPARES` (`$TRACTOR_FORKSERVER_SPARES`,
# default 1, 0 turns them off) refilled `REFILL_DELAY` after the last
# spawn, so a spare never competes with children booting; torn down
# when the run ends (an unclaimed spare exits at the end of its pipe,
# which also happens if this process dies).

def _env_int(name: str, default: int) -> int:
    try:
        return max(0, int(os.environ[name]))
    except (KeyError, ValueError):
        return default


SPARES: int = _env_int('TRACTOR_FORKSERVER_SPARES', 1)
REFILL_DELAY: float = 0.1
# bound on an unclaimed spare's exit at teardown (it may be warming up)
SPARE_STOP_BOUND: float = 1.0


def _spare_main(claim: Any, reason_writer: Any) -> None:
    '''
    A spare's `multiprocessing` target: warm up, wait to be claimed,
    then run the claiming spawn's actor exactly as `_mp_child_main()`.
    '''
    # idle, a Ctrl-C is its parent's to handle (it ends us by closing
    # the pipe); claimed, the actor's handler is the usual one
    sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        warm_trio()
        try:
            payload = claim.recv_bytes()
        except EOFError:
            # never claimed
            reason_writer.close()
            return
        finally:
            claim.close()
    finally:
        signal.signal(signal.SIGINT, sigint)
    name, cwd, sys_path, kwargs = _mp_reduction.ForkingPickler.loads(payload)
    # what multiprocessing would have set from the spawner's state then
    mp.current_process().name = name
    if os.getcwd() != cwd:
        os.chdir(cwd)
    sys.path[:] = sys_path
    _mp_child_main(**kwargs, reason_writer=reason_writer)


class _Spare:
    def __init__(
        self,
        proc: Any,
        reason: ReasonPipe,
        claim: Any,
        server: Any,
        inherit_parent_main: bool,
    ) -> None:
        self.handle = MpProcessHandle(proc, forkserver=True, reason=reason)
        self.claim_w = claim
        # the server that forked it (a spare of a replaced one is stale)
        self.server = server
        # whether multiprocessing set up our `__main__` in it: only a
        # spawn asking the same may have it
        self.inherit_parent_main = inherit_parent_main

    def give(self, args: SpawnArgs, info: tuple[Any, bytes|None]) -> None:
        name, uuid = args.uid
        kwargs = _child_kwargs(args, 'mp_forkserver', info)
        title = f'{name}@{uuid[:8]}'
        self.handle.proc.name = title
        try:
            # a few hundred bytes: one write into an empty pipe
            self.claim_w.send_bytes(_mp_reduction.ForkingPickler.dumps(
                (title, os.getcwd(), sys.path, kwargs)
            ))
        finally:
            self.claim_w.close()

    def dismiss(self) -> None:
        if not self.claim_w.closed:
            self.claim_w.close()


def _server_id() -> Any:
    return _adopted_forkserver or _mp_forkserver._forkserver._forkserver_pid


class _SparePool:
    def __init__(self, size: int) -> None:
        self.size = size
        self.ready: list[_Spare] = []
        self.dismissed: list[_Spare] = []
        self.last_spawn: float = 0.0
        self.wanted = trio.Event()
        # spares are made like the last spawn (see `_Spare`)
        self.inherit_parent_main: bool = True

    def claim(self, args: SpawnArgs) -> MpProcessHandle|None:
        self.inherit_parent_main = args.inherit_parent_main
        while self.ready:
            spare = self.ready.pop()
            if (
                spare.server == _server_id()
                and spare.inherit_parent_main == args.inherit_parent_main
                and spare.handle.alive()
            ):
                try:
                    spare.give(args, _forkserver_info())
                except OSError:
                    # it died just now
                    self.dismissed.append(spare)
                    continue
                return spare.handle
            spare.dismiss()
            self.dismissed.append(spare)
        return None

    def spawned(self) -> None:
        self.last_spawn = trio.current_time()
        self.wanted.set()

    async def _make(self) -> _Spare:
        info = await _ready_forkserver()
        inherit = self.inherit_parent_main
        reason = ReasonPipe()
        claim_r, claim_w = mp.Pipe(duplex=False)
        try:
            proc = await _fork(
                dict(target=_spare_main, args=(claim_r, reason.writer), name='spare'),
                info,
                inherit_parent_main=inherit,
            )
        except BaseException:
            reason.close()
            claim_w.close()
            raise
        finally:
            claim_r.close()
        reason.close_child_end()
        return _Spare(proc, reason, claim_w, _server_id(), inherit)

    async def keep(self) -> None:
        try:
            while True:
                await self.wanted.wait()
                # only once no spawn happened for a while: a spare never
                # takes CPU from children still booting
                while (left := self.last_spawn + REFILL_DELAY - trio.current_time()) > 0:
                    await trio.sleep(left)
                self.wanted = trio.Event()
                await self._reap_dismissed()
                while len(self.ready) < self.size:
                    try:
                        self.ready.append(await self._make())
                    except Exception as err:
                        # spawning does not depend on spares: the next
                        # spawn forks cold (and will say why if it fails)
                        logger.warning(f'Could not start a forkserver spare: {err!r}')
                        break
        finally:
            with trio.CancelScope(shield=True):
                await self.close()

    async def _reap_dismissed(self) -> None:
        while self.dismissed:
            await _end_spare(self.dismissed.pop())

    async def close(self) -> None:
        for spare in self.ready:
            spare.dismiss()
        self.dismissed += self.ready
        self.ready = []
        await self._reap_dismissed()


async def _end_spare(spare: _Spare) -> None:
    spare.dismiss()
    handle = spare.handle
    with trio.move_on_after(SPARE_STOP_BOUND):
        await handle.wait()
    if handle.alive():
        handle.kill()
        with trio.move_on_after(SPARE_STOP_BOUND):
            await handle.wait()
    await handle.release()


_spare_pool: trio.lowlevel.RunVar = trio.lowlevel.RunVar('_mp_fs_spares')


def _spares_for_run() -> _SparePool|None:
    if not SPARES:
        return None
    try:
        return _spare_pool.get()
    except LookupError:
        pool = _SparePool(SPARES)
        _spare_pool.set(pool)
        trio.lowlevel.spawn_system_task(pool.keep, name='mp-forkserver-spares')
        return pool


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


def warm_trio() -> None:
    '''
    Run trio once the way a child starts: one-off work (lazy imports,
    caches) done, and the pages it writes made this process's own.
    Best effort: a process that cannot just stays colder.
    '''
    try:
        trio.run(_loopback)
    except Exception:
        pass


# -- the backends --

def _child_kwargs(
    args: SpawnArgs,
    spawn_method: str,
    info: tuple[Any, bytes|None]|None,
) -> dict[str, Any]:
    '''`_mp_child_main()`'s arguments for spawning `args`.'''
    return dict(
        uid=args.uid,
        parent_addr=tuple(args.parent_addr),
        loglevel=args.loglevel,
        infect_asyncio=args.infect_asyncio,
        spawn_method=spawn_method,
        forkserver_info=info if SHARE_FORKSERVER else None,
        # pickled onto a pipe only the child reads
        secret=args.secret,
        inherit_parent_main=args.inherit_parent_main,
    )


def _process_kwargs(
    args: SpawnArgs,
    spawn_method: str,
    info: tuple[Any, bytes|None]|None,
    reason: ReasonPipe,
) -> dict[str, Any]:
    '''The `multiprocessing.Process` of a child spawning `args`.'''
    name, uuid = args.uid
    return dict(
        target=_mp_child_main,
        kwargs=dict(
            _child_kwargs(args, spawn_method, info),
            # multiprocessing duplicates its fd into the child
            reason_writer=reason.writer,
        ),
        name=f'{name}@{uuid[:8]}',
    )


async def _start(
    args: SpawnArgs,
    ctx: Any,
    spawn_method: str,
    forkserver: bool,
) -> MpProcessHandle:
    if args.proc_kwargs:
        # refused, not ignored: multiprocessing starts the child itself
        raise ValueError(
            f'`proc_kwargs` do not apply to the {spawn_method!r} spawn backend '
            f'(multiprocessing starts the process): {args.proc_kwargs!r}'
        )
    if forkserver and _ASYNC_REQUESTS:
        return await _start_forkserver_child(args)

    def start() -> Any:
        if _in_subinterpreter():
            # before the forkserver's hook: that one runs first (LIFO)
            # and the server holds the tracker's pipe too
            _register_tracker_stop()
        # even when not sharing it, our own server must be started with
        # the preload and the exit hook
        info = _forkserver_info() if forkserver else None
        reason = ReasonPipe()
        proc = ctx.Process(**_process_kwargs(args, spawn_method, info, reason))
        _starting.without_main = not args.inherit_parent_main
        try:
            proc.start()
        except BaseException:
            reason.close()
            raise
        finally:
            _starting.without_main = False
        reason.close_child_end()
        return proc, reason

    # starting blocks: a fork+exec and a pipe write (spawn), a round trip
    # with the forkserver (forkserver) and, the first time, its boot and
    # preload. Uncancellable on purpose: once started, the child must be
    # handed back to be supervised (and reaped).
    proc, reason = await trio.to_thread.run_sync(start)
    return MpProcessHandle(proc, forkserver=forkserver, reason=reason)


async def mp_spawn_proc(args: SpawnArgs) -> MpProcessHandle:
    return await _start(args, mp.get_context('spawn'), 'mp_spawn', forkserver=False)


async def mp_forkserver_proc(args: SpawnArgs) -> MpProcessHandle:
    return await _start(
        args, mp.get_context('forkserver'), 'mp_forkserver', forkserver=True,
    )
