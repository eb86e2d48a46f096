'''
The multi-process debugger: `pause()`, post-mortem REPLs on crashes in
any actor of the tree, one REPL at a time through a tty lock owned by the
root (see `ai/debugger.md`).

Importing this package imports no `pdb`/`pdbp`: the REPL class
(`PdbREPL`, `TractorConfig`, `mk_pdb`) loads on first use.
'''
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
)

# defined down in trionics, whose helpers yield it too
from tractor.trionics._taskc import (
    BoxedMaybeException as BoxedMaybeException,
)

from ._tty_lock import (
    LockRelease as LockRelease,
    LockStatus as LockStatus,
    _ctlc_ignore_header as _ctlc_ignore_header,
)
from ._trace import (
    _crash_msg as _crash_msg,
    _pause_msg as _pause_msg,
    _repl_fail_msg as _repl_fail_msg,
    _set_trace as _set_trace,
    breakpoint as breakpoint,
    pause as pause,
    post_mortem as post_mortem,
)
from ._sync import (
    _sync_pause_from_builtin as _sync_pause_from_builtin,
    pause_from_sync as pause_from_sync,
)
from ._crash_handler import (
    maybe_open_crash_handler as maybe_open_crash_handler,
    open_crash_handler as open_crash_handler,
)
from ._hooks import _maybe_enable_for as _maybe_enable_for
from tractor.runtime._debug_hooks import maybe_wait_for_tty as _maybe_wait_for_tty

_lazy_repl_names: frozenset[str] = frozenset({'PdbREPL', 'TractorConfig', 'mk_pdb', '_repl'})


async def maybe_wait_for_debugger(**_ignored: Any) -> None:
    '''Block while some actor of the tree is in a REPL (teardown helper).'''
    await _maybe_wait_for_tty()


@asynccontextmanager
async def acquire_debug_lock(subactor_uid: tuple[str, str]) -> AsyncIterator[None]:
    '''
    Hold the tree-wide tty lock for the block, without a REPL (e.g. to
    write to the terminal undisturbed); `subactor_uid` is kept for
    upstream's signature, the lock is taken by the calling task.
    '''
    from . import _trace
    await _trace._acquire('lock', _trace._task_uid())
    try:
        yield
    finally:
        _trace._end_session()


def __getattr__(name: str) -> Any:
    # PEP 562: the REPL (and so `pdbp`/`pdb`) only when asked for
    if name in _lazy_repl_names:
        import importlib
        _repl = importlib.import_module(f'{__name__}._repl')
        return _repl if name == '_repl' else getattr(_repl, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
