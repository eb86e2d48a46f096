'''
Developer tooling: text renderings of runtime objects (`pformat`),
task-tree dumps on SIGUSR1 (`enable_stack_on_sig`), stack dumps of a hung
block (`dump_on_hang`), actor process titles (`_proctitle`) and greenback
portals (`maybe_enable_greenback=True`), and the tree-wide debugger
(`debug`: `pause()`, crash REPLs, the root's tty lock).

None of the optional libraries (`stackscope`, `setproctitle`, `greenback`)
and no `pdb`/`pdbp` is imported until used.
'''
from tractor.runtime import _runtime

from . import _greenback
from ._hang import dump_on_hang as dump_on_hang
from ._proctitle import _title_subactor
from ._stackscope import (
    _maybe_enable_for,
    enable_stack_on_sig as enable_stack_on_sig,
)
from . import pformat as pformat
from . import debug as debug
from .debug import (
    breakpoint as breakpoint,
    maybe_open_crash_handler as maybe_open_crash_handler,
    maybe_wait_for_debugger as maybe_wait_for_debugger,
    acquire_debug_lock as acquire_debug_lock,
    open_crash_handler as open_crash_handler,
    pause as pause,
    pause_from_sync as pause_from_sync,
    post_mortem as post_mortem,
)


def mk_pdb(**kwargs):
    '''A `tractor.devx.debug.PdbREPL` (imports `pdbp` on first use).'''
    return debug.mk_pdb(**kwargs)

# every actor: its process title, the SIGUSR1 dumps and greenback portals
# when enabled
_runtime.boot_hooks.append(_title_subactor)
_runtime.boot_hooks.append(_maybe_enable_for)
_runtime.boot_hooks.append(_greenback._maybe_enable_for)
# every root owns the tty lock; debug-mode actors get the debugger's hooks
_runtime.boot_hooks.append(debug._maybe_enable_for)
