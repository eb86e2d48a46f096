'''
Defensive monkey-patches for known trio bugs that bite actor runtimes.
Each actor applies them all at boot (`apply_all()`); applying twice is a
no-op. A patch only acts in the buggy case, so it stays harmless once
trio fixes the bug.

* `nursery_start_cancelled`: `Nursery.start()` raises a `RuntimeError`
  ("child exited without calling task_status.started()") when the child
  ended early because the caller's scope was cancelled, so the
  cancellation turns into an error and a whole actor tree may crash
  during an orderly cancel. Patched: the caller gets its
  `trio.Cancelled` (see `trionics.start_or_cancel()`).
'''
from __future__ import annotations

import functools
from typing import Callable

import trio

_applied: dict[str, tuple[object, str, object]] = {}


def _patch_nursery_start() -> None:
    original = trio.Nursery.start

    @functools.wraps(original)
    async def start(self, async_fn, *args, name=None):
        try:
            return await original(self, async_fn, *args, name=name)
        except RuntimeError as err:
            if 'started' not in str(err):
                raise
            await trio.lowlevel.checkpoint_if_cancelled()
            raise

    _applied['nursery_start_cancelled'] = (trio.Nursery, 'start', original)
    trio.Nursery.start = start


_PATCHES: dict[str, Callable[[], None]] = {
    'nursery_start_cancelled': _patch_nursery_start,
}


def apply_all() -> list[str]:
    '''Apply every patch (once); the names of those in force.'''
    for name, patch in _PATCHES.items():
        if name not in _applied:
            patch()
    return list(_applied)


def revert_all() -> None:
    '''Undo every applied patch.'''
    while _applied:
        _, (owner, attr, original) = _applied.popitem()
        setattr(owner, attr, original)
