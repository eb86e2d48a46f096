'''
Spawning actors: the supervision core (`_spawn`) and one module per
backend, each registered in `_spawn._methods` under its key.
'''
from . import _spawn
from ._trio import trio_proc
from . import _subint


async def mp_spawn_proc(args: _spawn.SpawnArgs) -> _spawn.ChildHandle:
    # multiprocessing loads with the first spawn that uses it, so an
    # actor that never does (every `trio` or `subint` one) skips it
    from ._mp import mp_spawn_proc
    return await mp_spawn_proc(args)


async def mp_forkserver_proc(args: _spawn.SpawnArgs) -> _spawn.ChildHandle:
    from ._mp import mp_forkserver_proc
    return await mp_forkserver_proc(args)


_spawn.register_backend('trio', trio_proc)
_spawn.register_backend('mp_spawn', mp_spawn_proc)
_spawn.register_backend('mp_forkserver', mp_forkserver_proc)
if _subint.UNAVAILABLE:
    _spawn.mark_unavailable('subint', _subint.UNAVAILABLE)
else:
    _spawn.register_backend('subint', _subint.subint_proc)

# the actor nursery (runtime layer) spawns through us without importing us
from tractor.runtime import _supervise  # noqa: E402

_supervise._spawner = _spawn.new_proc
_supervise._start_method_for = _spawn.nursery_start_method
_supervise._main_data_for = _spawn.parent_main_data
