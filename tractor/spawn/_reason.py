'''
Why a child actor died before it could say so over IPC.

A child that fails before connecting back to its parent (or whose runtime
fails at all) has no channel to report on; its exit code says nothing.
So process backends hand each child the write end of a pipe: on the way
out with an error, the child writes one short line (the exception's type
and text) into it, and the parent reads it, without blocking, when it
describes how the child exited. (The `subint` backend needs none: the
child's exception comes back from the interpreter call itself.)
'''
from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import multiprocessing.connection as mp_conn

# bytes of reason kept; one atomic pipe write (under PIPE_BUF)
MAX_REASON: int = 2000

# the exit status of a child process that cancelled itself because its
# connection to its parent ended without a cancel request (sysexits'
# EX_TEMPFAIL): its parent must not take that for a clean exit
LOST_PARENT_EXIT: int = 75
LOST_PARENT_SAID: str = 'it lost its connection to its parent'


def reason_of(err: BaseException) -> str:
    '''One line saying what `err` is, groups of one unwrapped.'''
    err = _unwrap(err)
    reason = _one_line(err)
    if err.__cause__ is not None:
        # e.g. `TrioInternalError` from an error out of a system task
        reason += f' (from {_one_line(_unwrap(err.__cause__))})'
    return ' '.join(reason.split())


def _unwrap(err: BaseException) -> BaseException:
    while isinstance(err, BaseExceptionGroup) and len(err.exceptions) == 1:
        err = err.exceptions[0]
    return err


def _one_line(err: BaseException) -> str:
    text = str(err)
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


class ReasonPipe:
    '''The parent's end: where its child's last words arrive.'''

    def __init__(self) -> None:
        import multiprocessing.connection as mp_conn
        self.reader, self.writer = mp_conn.Pipe(duplex=False)
        self._reason: str|None = None

    def close_child_end(self) -> None:
        '''Once the child holds its copy of the write end.'''
        self.writer.close()

    def read(self) -> str|None:
        '''What the child reported, if anything (never blocks).'''
        if self._reason is None and not self.reader.closed:
            try:
                if self.reader.poll(0):
                    data = self.reader.recv_bytes(MAX_REASON + 64)
                    self._reason = data.decode('utf-8', 'replace')
            except (EOFError, OSError):
                pass
        return self._reason

    def close(self) -> None:
        self.read()
        if not self.writer.closed:
            self.writer.close()
        self.reader.close()


def write_reason(writer: mp_conn.Connection|int, err: BaseException) -> None:
    '''
    In the child: report `err` to the parent (`writer` is the pipe's
    write end, or its inherited fd). Best effort, never raises.
    '''
    try:
        data = reason_of(err).encode('utf-8', 'replace')[:MAX_REASON]
        if isinstance(writer, int):
            # the frame `Connection.send_bytes()` writes (a big-endian
            # length, then the bytes), without loading multiprocessing
            # in a child that does not use it; one write under PIPE_BUF
            os.write(writer, struct.pack('!i', len(data)) + data)
        else:
            writer.send_bytes(data)
    except Exception:
        pass
    finally:
        try:
            if isinstance(writer, int):
                os.close(writer)
            else:
                writer.close()
        except OSError:
            pass


def describe_with_reason(how: str, reason: str|None) -> str:
    '''`exited with code 1` plus the child's reason, when it gave one.'''
    return f'{how} ({reason})' if reason else how

