'''
Running an OS subprocess as a supervised task: started with the caller's
nursery, killed with its scope, its output relayed line by line to the
log, its failure raised with what it wrote to stderr.
'''
from __future__ import annotations

import logging
import subprocess
from collections import deque
from typing import (
    Any,
    Sequence,
)

import trio

from tractor import log

logger = log.get_logger()

# how much of a failed process's stderr its error carries
_STDERR_TAIL_LINES: int = 50


async def _relay_lines(
    stream: trio.abc.ReceiveStream,
    label: str,
    name: str,
    level: str|None,
    keep: deque[str]|None = None,
) -> None:
    from tricycle import TextReceiveStream
    async for line in TextReceiveStream(stream, errors='replace'):
        line = line.rstrip('\n')
        if keep is not None:
            keep.append(line)
        if level is not None:
            logger.log(logging.getLevelName(level.upper()), f'[{label} {name}] {line}')


async def supervise_run_process(
    cmd: Sequence[str]|str,
    *,
    check: bool = True,
    label: str|None = None,
    relay_stdout: bool = False,
    relay_stderr: bool = False,
    relay_level: str = 'io',
    stdout: Any = None,
    task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED,
    **proc_kwargs: Any,
) -> trio.Process:
    '''
    Run `cmd` until it exits, under the calling task's scope: a
    cancellation terminates it (SIGTERM, then SIGKILL after trio's grace
    period). Start it with `await nursery.start(supervise_run_process,
    cmd)` to get the `trio.Process` once it runs; awaited directly it
    returns the finished process.

    With `relay_stdout` / `relay_stderr` each output line is logged at
    `relay_level` (default `'io'`), prefixed with `label` (default: the
    program's name); otherwise stdout goes to `stdout` (inherited by
    default). A non-zero exit with `check=True` raises
    `subprocess.CalledProcessError` carrying the last lines of stderr.
    '''
    argv0 = cmd if isinstance(cmd, str) else cmd[0]
    label = label or str(argv0).rsplit('/', 1)[-1]
    stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)

    async with trio.open_nursery() as tn:
        proc: trio.Process = await tn.start(
            lambda task_status: trio.run_process(
                cmd,
                check=False,
                stdout=subprocess.PIPE if relay_stdout else stdout,
                stderr=subprocess.PIPE,
                task_status=task_status,
                **proc_kwargs,
            )
        )
        if relay_stdout:
            tn.start_soon(
                _relay_lines, proc.stdout, label, 'stdout', relay_level,
            )
        tn.start_soon(
            _relay_lines, proc.stderr, label, 'stderr',
            relay_level if relay_stderr else None, stderr_tail,
        )
        task_status.started(proc)
        await proc.wait()

    if check and proc.returncode != 0:
        stderr = '\n'.join(stderr_tail)
        err = subprocess.CalledProcessError(
            proc.returncode, cmd, stderr=stderr,
        )
        if stderr:
            err.add_note(f'{label} stderr (last lines):\n{stderr}')
        raise err
    return proc
