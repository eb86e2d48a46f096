'''
Developer tooling: text renderings of runtime objects (`pformat`),
task-tree dumps on SIGUSR1 (`enable_stack_on_sig`), stack dumps of a hung
block (`dump_on_hang`), actor process titles (`_proctitle`) and greenback
portals (`maybe_enable_greenback=True`). The
tree-wide debugger (`pause()`, crash REPLs) is not built yet.

None of the optional libraries (`stackscope`, `setproctitle`, `greenback`) is imported
until used.
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

# every actor: its process title, the SIGUSR1 dumps and greenback portals
# when enabled
_runtime.boot_hooks.append(_title_subactor)
_runtime.boot_hooks.append(_maybe_enable_for)
_runtime.boot_hooks.append(_greenback._maybe_enable_for)
