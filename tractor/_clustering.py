'''
Actor clusters: a pool of identical worker actors, spawned at once and
torn down together.
'''
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
)

import trio

from tractor.runtime import _state
from tractor.runtime._portal import Portal
from tractor.runtime._supervise import open_nursery
from tractor.trionics import collapse_eg


@asynccontextmanager
async def open_actor_cluster(
    modules: list[str],
    count: int = os.cpu_count() or 1,
    names: list[str]|None = None,
    hard_kill: bool = False,
    **runtime_kwargs: Any,
) -> AsyncIterator[dict[str, Portal]]:
    '''
    Spawn `count` worker actors serving `modules`, all concurrently,
    and yield their portals keyed by actor name:
    `'<this actor's name>.<name>'`, with `names` (one per worker,
    default `worker_<i>`). The workers are cancelled (with
    `hard_kill`, killed at once) when the block exits.

    `runtime_kwargs` go to `open_nursery()` (and so to
    `open_root_actor()` when no runtime is running yet).
    '''
    if names is None:
        names = [f'worker_{i}' for i in range(count)]
    if len(names) != count:
        raise ValueError(
            f'`names` has {len(names)} entries for a cluster of {count} workers'
        )
    if len(set(names)) != len(names):
        raise ValueError(f'`names` must be unique, got {names!r}')

    portals: dict[str, Portal] = {}
    async with open_nursery(**runtime_kwargs) as an:
        prefix = _state.current_actor().name

        async def spawn(name: str) -> None:
            full_name = f'{prefix}.{name}'
            portals[full_name] = await an.start_actor(
                full_name, enable_modules=modules,
            )

        async with collapse_eg(), trio.open_nursery() as tn:
            for name in names:
                tn.start_soon(spawn, name)
        # in spawn order, not in the order they came up
        yield {
            f'{prefix}.{name}': portals[f'{prefix}.{name}'] for name in names
        }
        await an.cancel(hard_kill=hard_kill)
