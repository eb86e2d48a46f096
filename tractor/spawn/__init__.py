'''
Spawning actors: the supervision core (`_spawn`) and one module per
backend, each registered in `_spawn._methods` under its key.
'''
from . import _spawn
from ._trio import trio_proc

_spawn.register_backend('trio', trio_proc)

# the actor nursery (runtime layer) spawns through us without importing us
from tractor.runtime import _supervise  # noqa: E402

_supervise._spawner = _spawn.new_proc
_supervise._main_data_for = _spawn.parent_main_data
