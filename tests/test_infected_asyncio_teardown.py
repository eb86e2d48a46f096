'''
Infected (`infect_asyncio=True`) children that do not cooperate with
their teardown, on every backend: one whose trio side or asyncio side
never yields to the loop, one whose asyncio task ignores cancellation,
one that stopped serving IPC. The nursery still ends them within its
bounds, and (`subint`) leaves no thread or sub-interpreter behind.

'''
import asyncio
import os
import threading
import time

import pytest
import trio
import tractor
from tractor import to_asyncio
from tractor._exceptions import ActorFailure
from tractor._testing import nursery_kwargs
from tractor.to_asyncio import (
    TrioCancelled,
    TrioTaskExited,
)


# ---- functions run inside child actors ----

async def spin_in_trio():
    while True:
        pass


async def aio_spin():
    while True:
        pass


async def spin_in_asyncio():
    await to_asyncio.run_task(aio_spin)


async def aio_ignore_cancellation():
    while True:
        try:
            await asyncio.sleep(float('inf'))
        except (asyncio.CancelledError, TrioCancelled, TrioTaskExited):
            pass


async def asyncio_task_ignores_cancellation():
    await to_asyncio.run_task(aio_ignore_cancellation)


async def aio_sleep_forever():
    await asyncio.sleep(float('inf'))


async def close_server_in_asyncio_wait():
    tractor.current_actor().ipc_server.cancel()
    await to_asyncio.run_task(aio_sleep_forever)


# ---- helpers ----

def foreign_os_threads() -> int:
    '''OS threads of this process not known to the main interpreter.'''
    return len(os.listdir('/proc/self/task')) - threading.active_count()


def subint_leftovers() -> tuple[list[str], int]:
    threads = [t.name for t in threading.enumerate() if t.name.startswith('subint[')]
    try:
        import _interpreters
    except ImportError:
        return threads, 1
    from tractor.spawn import _subint_pool
    # the warm pool's spares are no actor's (tests/test_subint_pool.py
    # checks they go with the root)
    spares = set(_subint_pool.spare_ids())
    return threads, len([
        iid for iid, *_ in _interpreters.list_all() if iid not in spares
    ])


async def wait_clean(baseline_foreign: int, timeout: float = 3) -> None:
    with trio.move_on_after(timeout):
        while (
            subint_leftovers() != ([], 1)
            or foreign_os_threads() > baseline_foreign
        ):
            await trio.sleep(0.02)
    assert subint_leftovers() == ([], 1)
    assert foreign_os_threads() <= baseline_foreign


def only_actor_errors(err: BaseException) -> bool:
    if isinstance(err, BaseExceptionGroup):
        return all(only_actor_errors(sub) for sub in err.exceptions)
    return isinstance(err, (tractor.RemoteActorError, ActorFailure))


@pytest.mark.parametrize(
    'child_fn',
    [
        spin_in_trio,
        spin_in_asyncio,
        asyncio_task_ignores_cancellation,
        close_server_in_asyncio_wait,
    ],
    ids=['trio-spins', 'asyncio-spins', 'asyncio-ignores-cancel', 'server-closed'],
)
def test_uncooperative_infected_child_is_ended(reg_addr, start_method, child_fn):
    baseline = foreign_os_threads()

    async def main():
        an = None
        with trio.fail_after(20):
            try:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as nursery:
                    an = nursery
                    await an.run_in_actor(child_fn, name='busy', infect_asyncio=True)
                    # let it get stuck
                    await trio.sleep(1)
                    started = time.monotonic()
                    await an.cancel()
            except BaseException as err:
                # the interrupt may surface as the child's (boxed) error
                assert only_actor_errors(err), err
            elapsed = time.monotonic() - started
            assert not an._children
            if start_method == 'subint':
                await wait_clean(baseline)
            return elapsed

    assert trio.run(main) < 8
