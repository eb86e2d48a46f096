'''
The multi-process debugger: `pause()`, post-mortem REPLs on crashes in
any actor of the tree, one REPL at a time through a tty lock owned by the
root (see `ai/debugger.md`).

Importing this package imports no `pdb`/`pdbp`: the REPL class
(`PdbREPL`, `TractorConfig`, `mk_pdb`) loads on first use.
'''
from __future__ import annotations

from typing import Any

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
    _sync_pause_from_builtin as _sync_pause_from_builtin,
    breakpoint as breakpoint,
    pause as pause,
    pause_from_sync as pause_from_sync,
    post_mortem as post_mortem,
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


async def acquire_debug_lock(subactor_uid: tuple[str, str]) -> None:
    '''Wait until the tree-wide tty lock is free (test/runtime helper).'''
    await _maybe_wait_for_tty()


def __getattr__(name: str) -> Any:
    # PEP 562: the REPL (and so `pdbp`/`pdb`) only when asked for
    if name in _lazy_repl_names:
        import importlib
        _repl = importlib.import_module(f'{__name__}._repl')
        return _repl if name == '_repl' else getattr(_repl, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
