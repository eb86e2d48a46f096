'''
Spawning basics on the actor-nursery API: daemons via `start_actor()`,
one-shot actors via `run_in_actor()`, nested trees, many actors at
once, and the process-global runtime state seen from a child and from
the root.

'''
import os
import time

import pytest
import trio
import tractor
from tractor._exceptions import (
    NoRuntime,
    RuntimeFailure,
)
from tractor._testing import nursery_kwargs


# ---- functions run inside child actors ----

async def add(a: int, b: int) -> int:
    return a + b


async def get_pid() -> int:
    return os.getpid()


async def actor_facts() -> dict:
    '''
    Report what the runtime in this process believes about itself.

    '''
    actor = tractor.current_actor()
    return {
        'name': actor.name,
        'is_root': tractor.is_root_process(),
        'pid': os.getpid(),
    }


async def square_after(x: int, delay: float = 0) -> int:
    await trio.sleep(delay)
    return x * x


async def nest(depth: int) -> list[str]:
    '''
    Spawn a chain of `depth` more actors below this one; each level
    returns the list of names from itself down to the leaf.

    '''
    me: str = tractor.current_actor().name
    if depth <= 0:
        return [me]

    async with tractor.open_nursery() as an:
        portal = await an.run_in_actor(
            nest,
            name=f'level_{depth - 1}',
            depth=depth - 1,
        )
        below: list[str] = await portal.wait_for_result()

    return [me] + below


async def try_second_root() -> None:
    # a subactor already runs an actor runtime, so this must fail
    async with tractor.open_root_actor():
        pass


# ---- helpers ----

# ---- tests ----

def test_start_actor_and_portal_run(reg_addr, start_method):
    '''
    A daemon started with `start_actor()` serves repeated RPC calls
    until it is cancelled explicitly.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'adder',
                    enable_modules=[__name__],
                )
                assert isinstance(portal, tractor.Portal)
                assert len(an._children) == 1

                assert await portal.run(add, a=1, b=2) == 3
                assert await portal.run(add, a=-10, b=4) == -6

                # daemons have no "main" result
                assert (
                    await portal.wait_for_result()
                    is tractor._exceptions.NoResult
                )
                await portal.cancel_actor()

            assert not an._children

    trio.run(main)


def test_run_in_actor_result_cached(reg_addr, start_method):
    '''
    `run_in_actor()` spawns, runs a single task and returns a portal
    whose final result is cached and still readable after the nursery
    has exited.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.run_in_actor(
                    square_after,
                    name='squarer',
                    x=12,
                    delay=0.1,
                )
                assert await portal.wait_for_result() == 144

            # nursery gone, children reaped, result still there
            assert not an._children
            assert await portal.wait_for_result() == 144
            assert await portal.wait_for_result() == 144

    trio.run(main)


def test_run_in_actor_result_only_after_exit(reg_addr, start_method):
    '''
    The body never awaits the result; it is still collected by the
    nursery and available afterwards.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.run_in_actor(
                    actor_facts,
                    name='facts_reporter',
                )

            facts = await portal.wait_for_result()
            assert facts['name'] == 'facts_reporter'
            assert facts['is_root'] is False
            assert an.exited.is_set()

    trio.run(main)


def test_name_and_root_flag_in_child(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                # in the root process
                assert tractor.is_root_process() is True
                assert tractor.current_actor().name == 'root'

                portal = await an.start_actor(
                    'some_named_child',
                    enable_modules=[__name__],
                )
                facts = await portal.run(actor_facts)
                assert facts['name'] == 'some_named_child'
                assert facts['is_root'] is False

                # the parent's view is unchanged
                assert tractor.is_root_process() is True
                await an.cancel()

            assert an.cancel_called

    trio.run(main)


def test_run_in_actor_default_name(reg_addr, start_method):
    '''
    Without `name=` a `run_in_actor()` child is named after the
    function.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.run_in_actor(actor_facts)

            facts = await portal.wait_for_result()
            assert facts['name'] == 'actor_facts'

    trio.run(main)


@pytest.mark.skipon_spawn_backend(
    'subint',
    reason='checks the process-level fact that each actor has its own pid',
)
def test_child_runs_in_another_process(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'pid_reporter',
                    enable_modules=[__name__],
                )
                child_pid = await portal.run(get_pid)
                assert child_pid != os.getpid()
                assert tractor.current_actor().pid == os.getpid()
                await portal.cancel_actor()

    trio.run(main)


def test_nested_three_levels(reg_addr, start_method):
    '''
    root -> level_3 -> level_2 -> level_1 -> level_0: every level
    spawns the next and the chain of names flows back to the root.

    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.run_in_actor(
                    nest,
                    name='level_3',
                    depth=3,
                )
                names = await portal.wait_for_result()

            assert names == ['level_3', 'level_2', 'level_1', 'level_0']

    trio.run(main)


@pytest.mark.skipon_spawn_backend(
    'subint',
    reason='asserts the process-level fact of distinct pids per actor',
)
def test_many_actors_at_once(reg_addr, start_method):
    '''
    Spawn 12 daemons concurrently, call each one, then cancel all of
    them with `an.cancel()`.

    '''
    count: int = 12

    async def main():
        portals: dict[str, tractor.Portal] = {}
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:

                async def spawn(i: int):
                    name = f'worker_{i}'
                    portals[name] = await an.start_actor(
                        name,
                        enable_modules=[__name__],
                    )

                async with trio.open_nursery() as tn:
                    for i in range(count):
                        tn.start_soon(spawn, i)

                assert len(portals) == count
                assert len(an._children) == count

                facts: dict[str, dict] = {}

                async def ask(name: str, portal: tractor.Portal):
                    facts[name] = await portal.run(actor_facts)

                async with trio.open_nursery() as tn:
                    for name, portal in portals.items():
                        tn.start_soon(ask, name, portal)

                for name, fact in facts.items():
                    assert fact['name'] == name
                    assert fact['is_root'] is False

                pids = {fact['pid'] for fact in facts.values()}
                assert len(pids) == count
                assert os.getpid() not in pids

                await an.cancel()

            assert an.cancel_called
            assert not an._children

    trio.run(main)


def test_children_table_empty_after_exit(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                assert len(an._children) == 0
                # a one-shot child that stays busy long enough for the
                # count (it is reaped soon after returning otherwise)
                await an.run_in_actor(square_after, name='sq', x=3, delay=30)
                assert len(an._children) == 1
                await an.start_actor('idle', enable_modules=[__name__])
                assert len(an._children) == 2
                await an.cancel()

            assert an._children == {}
            assert an.exited.is_set()

    trio.run(main)


def test_implicit_root_via_open_nursery(reg_addr, start_method):
    '''
    With no runtime up, the first `open_nursery()` boots a root actor
    named 'root' and tears it down on exit.

    '''
    async def main():
        assert tractor.current_actor(err_on_no_runtime=False) is None
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                assert an._implicit_runtime_started is True
                actor = tractor.current_actor()
                assert actor.name == 'root'
                assert tractor.is_root_process()

                portal = await an.run_in_actor(add, a=20, b=22)

            assert await portal.wait_for_result() == 42

        # runtime is gone again
        assert tractor.current_actor(err_on_no_runtime=False) is None
        with pytest.raises(NoRuntime):
            tractor.current_actor()

    trio.run(main)


def test_nursery_inside_explicit_root(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_root_actor(
                name='explicit_root',
                **nursery_kwargs(reg_addr, start_method),
            ) as root:
                async with tractor.open_nursery() as an:
                    assert an._implicit_runtime_started is False
                    assert tractor.current_actor() is root
                    assert root.name == 'explicit_root'
                    portal = await an.run_in_actor(add, a=1, b=1)

                assert await portal.wait_for_result() == 2
                # the runtime outlives the nursery
                assert tractor.current_actor() is root

    trio.run(main)


def test_second_root_in_same_process_fails(reg_addr, start_method):
    async def main():
        with trio.fail_after(10):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, start_method),
            ):
                with pytest.raises(RuntimeFailure) as excinfo:
                    async with tractor.open_root_actor(
                        **nursery_kwargs(reg_addr, start_method),
                    ):
                        pass

                assert isinstance(excinfo.value, RuntimeError)
                # the first root is still alive and well
                assert tractor.current_actor().name == 'root'

    trio.run(main)


def test_second_root_in_subactor_fails(reg_addr, start_method):
    '''
    A subactor trying to open its own root gets a `RuntimeFailure`,
    which the parent sees boxed.

    '''
    async def main():
        with trio.fail_after(15):
            with pytest.raises(tractor.RemoteActorError) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    await an.run_in_actor(
                        try_second_root,
                        name='would_be_root',
                    )

            rae = excinfo.value
            assert rae.boxed_type is RuntimeFailure
            assert rae.src_uid[0] == 'would_be_root'

    trio.run(main)


def test_current_actor_without_runtime():
    with pytest.raises(NoRuntime):
        tractor.current_actor()

    assert issubclass(NoRuntime, RuntimeError)
    assert tractor.current_actor(err_on_no_runtime=False) is None


def test_spawn_is_quick(reg_addr, start_method):
    '''
    Sanity bound on spawn + teardown cost so the rest of the suite
    stays fast.

    '''
    async def main():
        with trio.fail_after(15):
            start = time.monotonic()
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.run_in_actor(add, a=2, b=3)
            assert await portal.wait_for_result() == 5
            assert time.monotonic() - start < 5

    trio.run(main)
