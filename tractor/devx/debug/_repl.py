'''
The REPL itself: a `pdbp.Pdb` whose continue/quit hand the tree-wide tty
lock back. Importing this module imports `pdbp` (and so `pdb`): only the
debugger does, and only once a REPL is actually wanted.
'''
from __future__ import annotations

import os
import sys
from typing import (
    Any,
    Callable,
    TextIO,
)

import pdbp

# called (sync, from the REPL's thread) when the user ends a REPL session
# with continue or quit; set by `_trace` for each session
_on_release: Callable[[], None]|None = None


class TractorConfig(pdbp.DefaultConfig):
    '''`pdbp` settings for tractor's REPLs.'''
    use_pygements: bool = True
    # several actors take turns on one terminal: do not clear it
    sticky_by_default: bool = False
    # frames marked `__tracebackhide__` (our own API) are stepped over
    enable_hidden_frames: bool = True
    show_hidden_frames_count: bool = False
    # pdbp would stop pytest's capture behind our back
    disable_pytest_capturing: bool = False

    @property
    def use_pygments(self) -> bool:  # pdbp's spelling
        return self.use_pygements

    @use_pygments.setter
    def use_pygments(self, value: bool) -> None:
        self.use_pygements = value


class PdbREPL(pdbp.Pdb):
    '''
    The `(Pdb+)` REPL of every actor. Ending a session (`c`, `q`) releases
    the tree-wide tty lock so the next actor waiting for the terminal gets
    it.
    '''
    DefaultConfig = TractorConfig

    def set_continue(self) -> None:
        try:
            super().set_continue()
        finally:
            _release()

    def set_quit(self) -> None:
        try:
            super().set_quit()
        finally:
            _release()


def _release() -> None:
    hook = _on_release
    if hook is not None:
        hook()


def _terminal_stdin() -> TextIO|None:
    '''
    A readable terminal when our own stdin is not one: multiprocessing
    children get `/dev/null` as stdin, but still share the controlling
    terminal of the tree.
    '''
    stdin = sys.stdin
    try:
        if stdin is not None and not stdin.closed and stdin.isatty():
            return None
    except ValueError:
        pass
    try:
        return open('/dev/tty', 'r')
    except OSError:
        return None


def close_tty(repl: Any) -> None:
    '''Close the terminal `mk_pdb()` opened for `repl`, if it did.'''
    tty = getattr(repl, '_tractor_tty', None)
    if tty is not None:
        repl._tractor_tty = None
        tty.close()


def mk_pdb(**kwargs: Any) -> PdbREPL:
    '''
    A fresh `PdbREPL`, reading the terminal (even from a child whose stdin
    is not it) and leaving SIGINT to the debugger's own handler.
    '''
    kwargs.setdefault('nosigint', True)
    tty = None
    if 'stdin' not in kwargs and (tty := _terminal_stdin()) is not None:
        kwargs['stdin'] = tty
        # `cmd` only uses `input()` (readline) when stdin is sys.stdin
        kwargs.setdefault('stdout', sys.stdout)
    repl = PdbREPL(**kwargs)
    if 'stdin' in kwargs:
        repl.use_rawinput = False
    # ours to close once the session ends (`close_tty()`)
    repl._tractor_tty = tty if kwargs.get('stdin') is tty else None
    if os.environ.get('TRACTOR_PDB_NO_COLOR') or os.environ.get('NO_COLOR'):
        repl.config.use_pygements = False
        repl.config.highlight = False
    return repl
