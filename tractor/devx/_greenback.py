'''
`maybe_enable_greenback=True`: every task of every actor in the tree
gets a `greenback` portal, so sync code they call can `await` through
`greenback.await_()` (what a sync-code `pause_from_sync()` builds on).
'''
from __future__ import annotations

from typing import Any

import trio

from tractor import log
from tractor.runtime import _state

logger = log.get_logger()


def import_greenback() -> Any:
    '''The `greenback` module, or a clear error saying how to get it.'''
    try:
        import greenback
    except ImportError as err:
        raise ModuleNotFoundError(
            '`maybe_enable_greenback=True` needs `greenback`: install it, '
            'e.g. `pip install "tractor[devx]"`'
        ) from err
    return greenback


class _BestowPortals(trio.abc.Instrument):
    '''Gives each new task of the run a greenback portal.'''

    def __init__(self, greenback: Any) -> None:
        self._greenback = greenback

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self._greenback.bestow_portal(task)


def _maybe_enable_for(actor: Any) -> None:
    if not _state._runtime_vars.get('use_greenback'):
        return
    greenback = import_greenback()
    instrument = _BestowPortals(greenback)
    trio.lowlevel.add_instrument(instrument)
    actor.lifetime_stack.callback(_remove_quietly, instrument)


def _remove_quietly(instrument: trio.abc.Instrument) -> None:
    try:
        trio.lowlevel.remove_instrument(instrument)
    except (KeyError, RuntimeError):
        pass


async def ensure_portal() -> None:
    '''Give the calling task a portal (tasks spawned later get one anyway).'''
    await import_greenback().ensure_portal()
