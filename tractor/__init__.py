'''
tractor: structured concurrent "actors" on trio.

Each actor is an isolated Python runtime (a process or a sub-interpreter)
running its own `trio.run()`; actors call each other over IPC and are
supervised like trio tasks in a nursery.
'''
from ._exceptions import (
    AuthenticationFailed as AuthenticationFailed,
    ContextCancelled as ContextCancelled,
    HandshakeFailed as HandshakeFailed,
    ModuleNotExposed as ModuleNotExposed,
    MsgTypeError as MsgTypeError,
    RemoteActorError as RemoteActorError,
    TransportClosed as TransportClosed,
)
from ._context import (
    Context as Context,
    context as context,
)
from ._streaming import (
    MsgStream as MsgStream,
    stream as stream,
)
from .ipc import Channel as Channel
from .runtime._state import (
    RuntimeVars as RuntimeVars,
    current_actor as current_actor,
    current_ipc_ctx as current_ipc_ctx,
    debug_mode as debug_mode,
    get_runtime_vars as get_runtime_vars,
    is_root_process as is_root_process,
)
from .runtime._runtime import Actor as Actor
from .runtime._portal import Portal as Portal
from .runtime._supervise import (
    ActorNursery as ActorNursery,
    open_nursery as open_nursery,
)
from .discovery import (
    find_actor as find_actor,
    get_registry as get_registry,
    query_actor as query_actor,
    wait_for_actor as wait_for_actor,
)
from .discovery._registry import (
    Arbiter as Arbiter,
    Registrar as Registrar,
)
from . import spawn as spawn  # installs the spawn backends
from ._root import (
    open_root_actor as open_root_actor,
    run_daemon as run_daemon,
)
from ._clustering import open_actor_cluster as open_actor_cluster
from . import msg as msg
from . import log as log
from . import trionics as trionics
from . import devx as devx  # installs its actor boot hooks


def _apply_trio_patches(actor: Actor) -> None:
    # our own processes only: a root is the user's program
    if not actor.is_root:
        trionics.patches.apply_all()


from .runtime import _runtime as _runtime_module  # noqa: E402
_runtime_module.boot_hooks.append(_apply_trio_patches)


# the debugger's entry points load it on first use (a child that is not
# in debug mode never does)
_DEBUGGER_NAMES = ('breakpoint', 'pause', 'pause_from_sync', 'post_mortem')


def __getattr__(name: str):
    # PEP 562: `tractor.to_asyncio` imports asyncio, so only on first use
    if name == 'to_asyncio':
        import importlib
        return importlib.import_module(f'{__name__}.to_asyncio')
    if name in _DEBUGGER_NAMES:
        return getattr(devx, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
    return sorted({*globals(), 'to_asyncio', *_DEBUGGER_NAMES})


def _run_as_asyncio_guest(trio_main):
    return __getattr__('to_asyncio').run_as_asyncio_guest(trio_main)


# a spawned `infect_asyncio=True` actor boots through this
spawn._entry.asyncio_host = _run_as_asyncio_guest

__all__ = [
    name for name in dir() if not name.startswith('_')
] + ['to_asyncio', *_DEBUGGER_NAMES]
