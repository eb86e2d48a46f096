'''
Process-global runtime state: the current actor, the runtime variables a
parent hands down to its children, and the per-task IPC context.

Imports nothing above the message layer, so every other layer may use it.
'''
from __future__ import annotations

import copy
import sys
from contextvars import ContextVar
from typing import (
    Any,
    TYPE_CHECKING,
)

import msgspec

from tractor import log
from tractor._exceptions import (
    InternalError,
    NoRuntime,
)
from tractor.msg import _ops
from tractor.trionics import _mngrs
from tractor.ipc._uds import (
    _DARWIN_TMPDIR as _DARWIN_TMPDIR,
    get_rt_dir as get_rt_dir,
)

if TYPE_CHECKING:
    from tractor._context import Context
    from ._runtime import Actor


class RuntimeVars(msgspec.Struct):
    '''The runtime variables, as a struct.'''
    _is_root: bool = False
    _root_mailbox: tuple[str|None, Any] = (None, None)
    _root_addrs: list = msgspec.field(default_factory=list)
    _enable_tpts: list[str] = msgspec.field(default_factory=lambda: ['tcp'])
    _registry_addrs: list = msgspec.field(default_factory=list)
    _debug_mode: bool = False
    repl_fixture: bool = False
    use_greenback: bool = False
    use_stackscope: bool = False
    _is_infected_aio: bool = False

    def update(self, mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            setattr(self, key, value)


_defaults: dict[str, Any] = msgspec.structs.asdict(RuntimeVars())
_runtime_vars: dict[str, Any] = copy.deepcopy(_defaults)

_def_tpt_proto: str = 'tcp'

_current_actor: Actor|None = None
_last_actor_name: str|None = None

_ctxvar_Context: ContextVar[Context|None] = _ops._ctxvar_Context


def current_actor(err_on_no_runtime: bool = True) -> Actor|None:
    '''The actor running in this process.'''
    if _current_actor is None and err_on_no_runtime:
        hint = (
            f'the last actor here was {_last_actor_name!r} and it has exited'
            if _last_actor_name else
            'start one with `tractor.open_root_actor()` or `tractor.open_nursery()`'
        )
        raise NoRuntime(f'No actor runtime is running in this process; {hint}')
    return _current_actor


def _set_current_actor(actor: Actor|None) -> None:
    global _current_actor, _last_actor_name
    if actor is None and _current_actor is not None:
        _last_actor_name = _current_actor.name
    _current_actor = actor


def is_main_process() -> bool:
    # a multiprocessing child has it loaded; not importing it keeps
    # `import tractor` and every other actor's boot lighter
    mp = sys.modules.get('multiprocessing')
    return mp is None or mp.current_process().name == 'MainProcess'


def is_root_process() -> bool:
    return bool(_runtime_vars['_is_root'])


def debug_mode() -> bool:
    return bool(_runtime_vars['_debug_mode'])


def get_runtime_vars(
    as_dict: bool = True,
    clear_values: bool = False,
) -> dict[str, Any]|RuntimeVars:
    '''A copy of the runtime variables (or of their fresh-process defaults).'''
    values = copy.deepcopy(_defaults if clear_values else _runtime_vars)
    if as_dict:
        return values
    return RuntimeVars(**values)


def set_runtime_vars(mapping: dict[str, Any]) -> None:
    _runtime_vars.clear()
    _runtime_vars.update(mapping)


def current_ipc_protos() -> list[str]:
    return list(_runtime_vars['_enable_tpts'])


def current_ipc_ctx(error_on_not_set: bool = False) -> Context|None:
    '''The IPC `Context` bound to the current task, if any.'''
    ctx = _ctxvar_Context.get()
    if ctx is None and error_on_not_set:
        raise InternalError('No IPC context is set for this task')
    return ctx


def _current_actor_name() -> str|None:
    return _current_actor.name if _current_actor is not None else None


def _current_actor_uid() -> tuple[str, str]|None:
    return _current_actor.aid.uid if _current_actor is not None else None


def _current_service_nursery() -> Any:
    tn = current_actor()._service_tn
    if tn is None:
        raise RuntimeError('The actor runtime has not started its service nursery')
    return tn


# log records name their actor through these (the log layer can't import us)
log._actor_name_getter = _current_actor_name
log._actor_uid_getter = _current_actor_uid
# `trionics.maybe_open_context()` shares resources in the service nursery
_mngrs._service_nursery_getter = _current_service_nursery
