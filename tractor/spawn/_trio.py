'''
The `trio` backend: each actor is a Python subprocess started through
`trio.lowlevel.open_process`, running `python -m tractor._child`.
'''
from __future__ import annotations

import os
import signal
import sys

import trio

from ._reason import (
    LOST_PARENT_EXIT,
    LOST_PARENT_SAID,
    ReasonPipe,
    describe_with_reason,
)
from ._spawn import (
    ChildHandle,
    SpawnArgs,
)


class ProcessHandle(ChildHandle):
    '''A child OS process.'''

    def __init__(self, proc: trio.Process, reason: ReasonPipe|None = None) -> None:
        self.proc = proc
        self.pid = proc.pid
        # where the child reports why it failed (see `_reason`)
        self._reason = reason

    async def wait(self) -> None:
        await self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        self.proc.terminate()

    def kill(self) -> None:
        self.proc.kill()

    def describe_exit(self) -> str:
        how = describe_returncode(self.proc.returncode)
        if self.proc.returncode is None or self._reason is None:
            return how
        return describe_with_reason(how, self._reason.read())

    def exited_cleanly(self) -> bool:
        return self.proc.returncode == 0

    async def release(self) -> None:
        if self._reason is not None and not self.alive():
            # keeps what was read, for later `describe_exit()` calls
            self._reason.close()


def describe_returncode(code: int|None) -> str:
    if code is None:
        return 'is still running'
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f'signal {-code}'
        return f'was killed by {name}'
    if code == LOST_PARENT_EXIT:
        return f'exited with code {code} ({LOST_PARENT_SAID})'
    return f'exited with code {code}'


def child_cmd(
    args: SpawnArgs,
    secret_fd: int,
    reason_fd: int|None = None,
) -> list[str]:
    cmd = [
        sys.executable, '-m', 'tractor._child',
        '--uid', repr(args.uid),
        '--parent_addr', repr(tuple(args.parent_addr)),
        '--secret-fd', str(secret_fd),
    ]
    if reason_fd is not None:
        cmd += ['--reason-fd', str(reason_fd)]
    if args.loglevel:
        cmd += ['--loglevel', args.loglevel]
    if args.infect_asyncio:
        cmd.append('--asyncio')
    return cmd


def _secret_pipe(secret: bytes) -> int:
    '''
    A pipe already holding `secret`, its write end closed: the child
    reads it from the inherited read end (our command line is readable
    by every user, a pipe is not).
    '''
    read_fd, write_fd = os.pipe()
    try:
        # at most a few KiB: fits the pipe's buffer, never blocks
        os.write(write_fd, secret)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return read_fd


async def trio_proc(args: SpawnArgs) -> ProcessHandle:
    proc_kwargs = dict(args.proc_kwargs)
    secret_fd = _secret_pipe(args.secret.value)
    reason = ReasonPipe()
    reason_fd = reason.writer.fileno()
    proc_kwargs['pass_fds'] = (
        *proc_kwargs.get('pass_fds', ()), secret_fd, reason_fd,
    )
    try:
        proc = await trio.lowlevel.open_process(
            child_cmd(args, secret_fd, reason_fd), **proc_kwargs,
        )
    except BaseException:
        reason.close()
        raise
    finally:
        os.close(secret_fd)
        reason.close_child_end()
    return ProcessHandle(proc, reason)
