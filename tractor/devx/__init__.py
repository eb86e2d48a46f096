'''
Developer tooling: text renderings of runtime objects (`pformat`),
task-tree dumps on SIGUSR1 (`enable_stack_on_sig`), stack dumps of a hung
block (`dump_on_hang`), actor process titles (`_proctitle`) and greenback
portals (`maybe_enable_greenback=True`), and the tree-wide debugger
(`debug`: `pause()`, crash REPLs, the root's tty lock).

None of the optional libraries (`stackscope`, `setproctitle`, `greenback`)
and no `pdb`/`pdbp` is imported until used.
'''
from __future__ import annotations

import importlib
from typing import Any

from tractor.runtime import _runtime, _state

from . import _greenback
from ._hang import dump_on_hang as dump_on_hang
from ._proctitle import _title_subactor
from ._stackscope import (
    _maybe_enable_for,
    enable_stack_on_sig as enable_stack_on_sig,
)
from . import pformat as pformat

# the debugger's public names, loaded with it on first use (PEP 562): an
# actor that is neither a root nor in debug mode never imports it
_DEBUG_NAMES: frozenset[str] = frozenset({
    'breakpoint',
    'maybe_open_crash_handler',
    'maybe_wait_for_debugger',
    'acquire_debug_lock',
    'open_crash_handler',
    'pause',
    'pause_from_sync',
    'post_mortem',
})


def _debug() -> Any:
    return importlib.import_module(f'{__name__}.debug')


def __getattr__(name: str) -> Any:
    if name == 'debug':
        return _debug()
    if name in _DEBUG_NAMES:
        return getattr(_debug(), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
    return sorted({*globals(), 'debug', *_DEBUG_NAMES})


def mk_pdb(**kwargs):
    '''A `tractor.devx.debug.PdbREPL` (imports `pdbp` on first use).'''
    return _debug().mk_pdb(**kwargs)


def _maybe_enable_debugger(actor: Any) -> None:
    '''Boot hook: every root owns the tty lock; debug-mode actors get the rest.'''
    if actor.is_root or _state.debug_mode():
        _debug()._maybe_enable_for(actor)


# every actor: its process title, the SIGUSR1 dumps and greenback portals
# when enabled
_runtime.boot_hooks.append(_title_subactor)
_runtime.boot_hooks.append(_maybe_enable_for)
_runtime.boot_hooks.append(_greenback._maybe_enable_for)
_runtime.boot_hooks.append(_maybe_enable_debugger)
