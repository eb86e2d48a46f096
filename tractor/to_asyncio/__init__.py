'''
"Infected asyncio": actors whose thread runs an asyncio event loop with
trio as its guest, so trio tasks can drive asyncio code.

Spawn such an actor with `start_actor(..., infect_asyncio=True)` (or
`run_in_actor(...)`), or run a root with `run_as_asyncio_guest()`. In
there, `run_task()` runs an asyncio function for a trio task and
`open_channel_from()` links a trio task with a long-lived asyncio task
through a `LinkedTaskChannel`; errors and cancellation cross between the
two as described in `ai/asyncio.md`.

Loaded on first use (`tractor.to_asyncio`): `import tractor` alone does
not import asyncio.
'''
from tractor._exceptions import (
    AsyncioCancelled as AsyncioCancelled,
    AsyncioRuntimeTranslationError as AsyncioRuntimeTranslationError,
    AsyncioTaskExited as AsyncioTaskExited,
    TrioCancelled as TrioCancelled,
    TrioTaskExited as TrioTaskExited,
)
from ._host import run_as_asyncio_guest as run_as_asyncio_guest
from ._pair import LinkedTaskChannel as LinkedTaskChannel
from ._api import (
    open_channel_from as open_channel_from,
    run_task as run_task,
)

__all__ = [
    'AsyncioCancelled',
    'AsyncioRuntimeTranslationError',
    'AsyncioTaskExited',
    'LinkedTaskChannel',
    'TrioCancelled',
    'TrioTaskExited',
    'open_channel_from',
    'run_as_asyncio_guest',
    'run_task',
]
