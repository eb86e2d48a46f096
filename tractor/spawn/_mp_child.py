'''
A `multiprocessing` actor: its handle in the parent (`MpProcessHandle`)
and its entry in the child (`_mp_child_main()`), for both `mp_spawn`
and `mp_forkserver` (and the forkserver's spares).
'''
from __future__ import annotations

import os
import select
import signal
import sys
import types
from typing import Any

import trio

from tractor import log
from tractor.ipc._auth import Secret
from ._entry import _actor_child_main
from ._forkserver import (
    SHARE_FORKSERVER,
    _adopt_forkserver,
)
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
