'''
The `subint` backend: each actor is a CPython sub-interpreter (PEP 734,
Python 3.14+) in the parent's process, driven by one OS thread created
for it alone, running the same entry point as every other backend
(`tractor.spawn._entry._actor_child_main`) and connecting back to its
parent over the tree's IPC transport (TCP or UDS).

Thread model
    `subint_proc()` starts a dedicated (never pooled) thread which
    creates the interpreter, runs the actor in it with
    `_interpreters.call()` and, once that returns, destroys the
    interpreter; only then is the parent told (through its trio token)
    that the child is gone. The parent's trio loop never blocks on a
    child. Inside the child a second, idle "warden" thread waits on a
    pipe for the parent's teardown commands: PEP 734 refuses to enter
    an interpreter that is already running, so acting *inside* a busy
    child needs a thread of its own there.

Interpreter config
    Isolated (own GIL) when the message codec and the child runtime
    import under it, else the legacy shared-GIL config (msgspec 0.23
    refuses isolated interpreters). Probed once per process, in the
    first actor's thread.

Teardown ladder (every step bounded)
    (a) graceful cancel request over IPC (shared with every backend);
    (b) `terminate()`: cancel the child's root scope from inside its
        interpreter (`Actor.cancel_soon()` via its trio token), or end
        its whole `trio.run()` if it is not up yet or already stuck
        cancelling;
    (c) `kill()`: raise `SubintInterrupted` asynchronously in the
        child's thread (`PyThreadState_SetAsyncExc` called *from the
        warden*, so it targets the child's interpreter), repeated until
        the thread leaves the runtime;
    (d) abandon: the whole bound after `kill()` (an interrupted actor
        first ends the children it still runs, within a third of it:
        `_spawn.end_unreaped_children`), `wait()` gives up while
        `alive()` stays true, so the supervision core logs an
        error naming the actor and moves on; the thread keeps running
        and destroys the interpreter if the call ever returns. Only code
        blocked in C (e.g. `time.sleep(1e6)`) gets here; if it is still
        blocked when the process exits, Python warns about the
        remaining sub-interpreter.

Setting
    `TEARDOWN_BOUND` (seconds, env `TRACTOR_SUBINT_TEARDOWN_BOUND`,
    default 1.5), read when a child is spawned: `hard_kill()` waits a
    third of it after the graceful phase and after (b), all of it after
    (c), so an unresponsive child is abandoned at most 5/3 of it after
    the graceful phase gave up.
'''
from __future__ import annotations

import os
import sys
import threading
from functools import partial
import time
import traceback
import warnings
from typing import Any

import trio

from tractor import log
from tractor.ipc._auth import Secret
from tractor.runtime import _state

from . import (
    _entry,
    _spawn,
)
from ._reason import (
    LOST_PARENT_SAID,
    reason_of,
)
from ._spawn import (
    ChildHandle,
    SpawnArgs,
)
from . import _subint_pool

logger = log.get_logger()

# why this backend cannot run here, `None` when it can
UNAVAILABLE: str|None = None
if sys.version_info < (3, 14):
    UNAVAILABLE = (
        "The 'subint' spawn backend needs Python 3.14+ (PEP 734 "
        '`concurrent.interpreters`); this is Python '
        f'{sys.version.split()[0]}'
    )
else:
    import _interpreters


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return default


TEARDOWN_BOUND: float = _env_float('TRACTOR_SUBINT_TEARDOWN_BOUND', 1.5)

# seconds between repeated interrupts of a child that swallows them
_INTERRUPT_EVERY: float = 0.1


# -- interpreter config probe ------------------------------------------

_config_lock = threading.Lock()
_config: tuple[str, Any]|None = None


def interp_config() -> tuple[str, Any]:
    '''
    `(kind, config)` for new actor interpreters, `kind` being
    `'isolated'` or `'legacy'`. Probed once per process (per
    interpreter, for nested actors); blocking, so call it off the
    trio loop.
    '''
    global _config
    with _config_lock:
        if _config is None:
            _config = _probe_config()
    return _config


def _probe_config() -> tuple[str, Any]:
    # the codec is what refuses isolated interpreters today (cheap to
    # test); only if it passes is the whole child runtime worth trying
    script = f'import sys\nsys.path[:] = {sys.path!r}\nimport msgspec\n'
    iid = _interpreters.create('isolated')
    try:
        ok = _interpreters.exec(iid, script) is None
        if ok:
            ok = _interpreters.exec(iid, f'import {_entry.__name__}') is None
    finally:
        _interpreters.destroy(iid)
    if ok:
        # trio's worker-thread cache uses daemon threads
        return 'isolated', _interpreters.new_config(
            'isolated', allow_daemon_threads=True,
        )
    return 'legacy', _interpreters.new_config('legacy')


# -- child side (runs inside the actor's interpreter) -------------------

class SubintInterrupted(BaseException):
    '''
    Raised asynchronously in a sub-interpreter actor's thread by the
    last teardown step, so code that never checkpoints is stopped.
    '''


class _SubintTerminated(BaseException):
    '''Raised inside the child's trio loop to end its whole run.'''


def _end_run(actor: Any) -> None:
    '''End the child's whole `trio.run()` now, like a killed process.'''
    # its parent sees the channel close (as when a process dies) instead
    # of getting the errors of a runtime torn down under its feet
    stream = getattr(getattr(actor._parent_chan, 'transport', None), 'stream', None)
    sock = getattr(stream, 'socket', None)
    if sock is not None:
        sock.close()
    # an exception out of a `run_sync_soon` callback makes trio cancel
    # every task and end `trio.run()` (with `TrioInternalError`)
    raise _SubintTerminated()


def _cancel_inside(actor: Any) -> None:
    '''Step (b), run in the child's trio loop.'''
    if actor._root_tn is not None and not actor._cancel_called:
        actor.cancel_soon()
    else:
        # not up yet (still handshaking with a parent that is gone) or
        # already cancelling but stuck there
        _end_run(actor)


class _Warden(threading.Thread):
    '''
    Waits (blocked in `os.read()`, no CPU, no GIL) for the parent's
    teardown commands and carries them out inside this interpreter.
    '''

    def __init__(self, ctl_r: int, ctl_w: int, main_tid: int) -> None:
        super().__init__(name='subint-warden', daemon=False)
        self.ctl_r = ctl_r
        self.ctl_w = ctl_w
        self.main_tid = main_tid
        # held while deciding to interrupt, so the main thread can stop
        # interrupts for good before running its own cleanup
        self.lock = threading.Lock()
        self.main_done = False
        self._set_exc = None
        self._clear_exc = None

    def run(self) -> None:
        while True:
            cmd = os.read(self.ctl_r, 1)
            if cmd in (b'', b'q'):
                return
            if cmd == b'c':
                self._in_loop(_cancel_inside)
            elif cmd == b'k':
                self._interrupt()

    def _in_loop(self, fn: Any) -> None:
        '''Run `fn(actor)` in the child's trio loop, if it runs one.'''
        actor = _state.current_actor(err_on_no_runtime=False)
        token = getattr(actor, '_trio_token', None)
        if token is None:
            return
        try:
            token.run_sync_soon(fn, actor)
        except (trio.RunFinishedError, OSError):
            # ended, or abandoned by an interrupt (wakeup socket closed)
            pass

    def _load_ctypes(self) -> None:
        import ctypes
        addr = ('PyThreadState_SetAsyncExc', ctypes.pythonapi)
        self._set_exc = ctypes.PYFUNCTYPE(
            ctypes.c_int, ctypes.c_ulong, ctypes.py_object,
        )(addr)
        # a NULL exception clears a pending one
        self._clear_exc = ctypes.PYFUNCTYPE(
            ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p,
        )(addr)

    def _interrupt(self) -> None:
        '''Step (c): interrupt the main thread until it leaves the runtime.'''
        self._load_ctypes()
        # an interrupt landing in trio's scheduler abandons the run; that
        # is the point, no need to warn about it
        warnings.filterwarnings('ignore', message='Trio guest run got abandoned')
        # ends a loop that still checkpoints, and wakes one idle in epoll
        # so the pending exception gets raised
        self._in_loop(_end_run)
        while True:
            with self.lock:
                if self.main_done:
                    return
                self._set_exc(self.main_tid, SubintInterrupted)
            self._in_loop(_noop)
            time.sleep(_INTERRUPT_EVERY)

    def settle(self) -> None:
        '''
        Called by the main thread once the actor returned: no interrupt
        may hit it after this.
        '''
        with self.lock:
            self.main_done = True
            if self._clear_exc is not None:
                self._clear_exc(self.main_tid, None)

    def stop(self) -> None:
        try:
            os.write(self.ctl_w, b'q')
        except OSError:
            pass
        self.join()


def _noop(*_: Any) -> None:
    pass


def _find_exc(err: BaseException, types: tuple[type, ...]) -> bool:
    '''Whether `err` is, contains or was caused by one of `types`.'''
    seen: set[int] = set()
    todo = [err]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, types):
            return True
        todo.extend(getattr(exc, 'exceptions', ()))
        todo += [exc.__cause__, exc.__context__]
    return False


def _describe_error(err: BaseException) -> str:
    if _find_exc(err, (SubintInterrupted,)):
        return 'interrupted'
    if _find_exc(err, (_SubintTerminated,)):
        return 'terminated'
    # like a crashed subprocess: show the traceback on (our) stderr
    traceback.print_exception(err)
    return f'failed: {reason_of(err)}'


def _drain_trio_workers(deadline: float) -> None:
    '''
    Make trio's idle cached worker threads (daemon threads that would
    otherwise idle 10 s and then hang forever once the interpreter is
    destroyed) exit now.
    '''
    tc = sys.modules.get('trio._core._thread_cache')
    cache = getattr(tc, 'THREAD_CACHE', None)
    if cache is None or not hasattr(cache, '_idle_workers'):
        return
    tc.IDLE_TIMEOUT = 0
    # a worker given a no-op job goes idle again, then finds no job
    # within the zero timeout and exits
    while cache._idle_workers and time.monotonic() < deadline:
        tc.start_thread_soon(_noop, _noop)
        time.sleep(0.001)


def _child_main(
    uid: tuple[str, str],
    parent_addr: Any,
    loglevel: str|None,
    infect_asyncio: bool,
    ctl_r: int,
    ctl_w: int,
    join_bound: float,
    secret: bytes,
) -> tuple[str, tuple[str, ...]]:
    '''
    The actor's life inside its interpreter; returns how it ended and
    the names of threads it started that are still running.
    '''
    warden = _Warden(ctl_r, ctl_w, threading.get_ident())
    outcome = 'interrupted'
    begun = False
    while True:
        # from `warden.start()` until `settle()` an interrupt may land
        # anywhere here: never run the actor twice, always settle
        try:
            if not begun:
                begun = True
                warden.start()
                try:
                    status = _entry._actor_child_main(
                        uid, parent_addr, loglevel, infect_asyncio, 'subint',
                        secret=Secret(secret),
                    )
                    outcome = 'lost-parent' if status else 'ok'
                except BaseException as err:
                    outcome = _describe_error(err)
            warden.settle()
            break
        except SubintInterrupted:
            continue

    warden.stop()
    # children still running in threads of this interpreter (it was
    # interrupted mid-teardown): end them, or destroying the interpreter
    # would strand their threads and their own interpreters for good
    _spawn.end_unreaped_children(join_bound)
    if outcome == 'interrupted':
        # its abandoned tasks complain when collected; nobody can act on it
        sys.unraisablehook = _noop
    deadline = time.monotonic() + join_bound
    _drain_trio_workers(deadline)
    others = [
        thread for thread in threading.enumerate()
        if thread.ident != threading.get_ident()
        and thread is not threading.main_thread()
    ]
    for thread in others:
        thread.join(max(0, deadline - time.monotonic()))
    lingering = tuple(thread.name for thread in others if thread.is_alive())
    return outcome, lingering


# -- parent side ---------------------------------------------------------

class SubintHandle(ChildHandle):
    '''A child actor running in a sub-interpreter on its own thread.'''

    def __init__(self, args: SpawnArgs) -> None:
        self.uid = args.uid
        self.reap_grace = TEARDOWN_BOUND / 3
        # killed, it first ends the children it still runs (within
        # `reap_grace`), then its interpreter and thread go
        self.kill_grace = TEARDOWN_BOUND
        self.interp_id: int|None = None
        self.config_kind: str|None = None
        self.outcome: str|None = None
        self.lingering: tuple[str, ...] = ()
        self._error: BaseException|None = None
        self._finished = False
        self._done = trio.Event()
        # set on `kill()` or the thread's end, whichever comes first
        self._killed_or_done = trio.Event()
        self._abandon_at: float|None = None
        self._token = trio.lowlevel.current_trio_token()
        # guards the control pipe against use after the thread closed it
        self._lock = threading.Lock()
        self._ctl_r, self._ctl_w = os.pipe()
        os.set_blocking(self._ctl_w, False)
        self.thread = threading.Thread(
            target=self._run,
            args=(args,),
            name=f'subint[{args.uid[0]}]',
            # an abandoned child must not keep the process from exiting
            daemon=True,
        )

    # -- the actor's thread --
    def _run(self, args: SpawnArgs, warm: tuple[str, int]|None = None) -> None:
        iid = None
        try:
            if warm is not None:
                # from the pool (`_subint_pool`): runtime already imported
                self.config_kind, iid = warm
                self.interp_id = iid
            else:
                self.config_kind, config = interp_config()
                iid = self.interp_id = _interpreters.create(config)
            excinfo = _interpreters.exec(
                iid, f'import sys\nsys.path[:] = {sys.path!r}\n',
            )
            if excinfo is None:
                result, excinfo = _interpreters.call(iid, _child_main, (
                    tuple(args.uid),
                    tuple(args.parent_addr),
                    args.loglevel,
                    args.infect_asyncio,
                    self._ctl_r,
                    self._ctl_w,
                    self.reap_grace,
                    # in-process: never leaves this process's memory
                    args.secret.value,
                ))
            if excinfo is not None:
                self.outcome = f'failed: {excinfo.formatted}'
                print(excinfo.errdisplay, file=sys.stderr)
            else:
                self.outcome, self.lingering = result
                if self.lingering:
                    logger.error(
                        f'Actor {self.uid!r} left thread(s) {list(self.lingering)} '
                        'running in its sub-interpreter; destroying it waits '
                        'for non-daemon ones, daemon ones are abandoned'
                    )
        except BaseException as err:
            self._error = err
            self.outcome = f'failed to start: {err!r}'
        finally:
            if iid is not None:
                try:
                    _interpreters.destroy(iid)
                except Exception as err:
                    logger.error(f'Could not destroy the interpreter of {self.uid!r}: {err!r}')
            with self._lock:
                self._finished = True
                os.close(self._ctl_r)
                os.close(self._ctl_w)
            try:
                self._token.run_sync_soon(self._set_done)
            except (trio.RunFinishedError, OSError):
                # our parent's run has ended: cleanly, or (the parent actor
                # interrupted) with its wakeup socket closed under the token
                pass

    def _set_done(self) -> None:
        self._done.set()
        self._killed_or_done.set()

    # -- `ChildHandle` --
    async def wait(self) -> None:
        '''
        Until the thread ended, or until the child was abandoned: killed
        and still running `kill_grace` later (it stays `alive()`, so the
        supervision core reports it), as nothing more can be done.
        '''
        while not self._done.is_set():
            if self._abandon_at is not None:
                with trio.move_on_at(self._abandon_at):
                    await self._done.wait()
                return
            await self._killed_or_done.wait()

    def alive(self) -> bool:
        return not self._finished

    def _command(self, cmd: bytes) -> None:
        with self._lock:
            if self._finished:
                return
            try:
                os.write(self._ctl_w, cmd)
            except BlockingIOError:
                pass

    def terminate(self) -> None:
        self._command(b'c')

    def kill(self) -> None:
        if self._abandon_at is None and not self._finished:
            try:
                self._abandon_at = trio.current_time() + self.kill_grace
                self._killed_or_done.set()
            except RuntimeError:
                # our actor's run is over (`end_unreaped_children()` on the
                # way out of an interrupted one): nobody waits in it
                pass
        self._command(b'k')

    def describe_exit(self) -> str:
        where = f'(sub-interpreter {self.interp_id}, thread {self.thread.name!r})'
        if not self._finished:
            if self.outcome is not None:
                return (
                    f'returned ({self.outcome}) but its interpreter cannot be '
                    f'destroyed while thread(s) {list(self.lingering)} it started '
                    f'still run {where}'
                )
            if self._abandon_at is None:
                return f'is still running {where}'
            return (
                f'is still running {where}, past an asynchronous interrupt: '
                'blocked in code that cannot be interrupted (e.g. a blocking C '
                'call); its thread and interpreter are left behind'
            )
        if self.outcome == 'ok':
            return 'exited'
        if self.outcome == 'lost-parent':
            return f'exited ({LOST_PARENT_SAID})'
        if self.outcome in ('terminated', 'interrupted'):
            return f'was {self.outcome}'
        return f'exited abnormally: {self.outcome}'

    def exited_cleanly(self) -> bool:
        return self._finished and self.outcome == 'ok'

    @property
    def socket_tag(self) -> str|None:
        # actors in sub-interpreters share our pid (`_uds._interp_suffix`)
        if self.interp_id is None:
            return None
        return f'@{os.getpid()}.{int(self.interp_id)}'

    async def release(self) -> None:
        if self._finished:
            # it only has to return from `_run()` by now
            self.thread.join(0.1)


async def subint_proc(args: SpawnArgs) -> SubintHandle:
    if args.proc_kwargs:
        raise ValueError(
            "`proc_kwargs` do not apply to the 'subint' spawn backend: its "
            'actors are threads of this process'
        )
    handle = SubintHandle(args)
    spare = _subint_pool.take(interp_config)
    if spare is None:
        handle.thread.start()
    else:
        # the thread of a warm (or warming) interpreter runs the actor
        handle.thread = spare.run(partial(handle._run, args), handle.thread.name)
    return handle
