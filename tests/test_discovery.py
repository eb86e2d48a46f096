'''
Discovery through the registrar: `find_actor()`, `wait_for_actor()`,
`get_registry()` and `query_actor()`, from the root (which is the
registrar here) and from inside subactors.

'''
import os
import time

import pytest
import trio
import tractor
from tractor._exceptions import NoRuntime
from tractor._testing import nursery_kwargs


# ---- functions run inside child actors ----

async def get_pid() -> int:
    return os.getpid()


async def get_name() -> str:
    return tractor.current_actor().name


async def accept_addrs() -> list:
    return [list(addr) for addr in tractor.current_actor().accept_addrs]


async def registered_names() -> list[str]:
    '''
    From a subactor: ask the registrar (over IPC) for its table.

    '''
    async with tractor.get_registry() as reg_portal:
        registry = await reg_portal.run_from_ns('self', 'get_registry')
    return sorted(key.split('.', 1)[0] for key in registry)


async def call_sibling(sibling: str) -> dict:
    '''
    From a subactor: find a sibling by name and RPC into it.

    '''
    async with tractor.find_actor(sibling) as portal:
        assert portal is not None, f'{sibling} not found'
        name = await portal.run(get_name)

    async with tractor.find_actor('no_such_actor_anywhere') as missing:
        assert missing is None

    return {'sibling_name': name}


# ---- helpers ----

def names_in(registry: dict) -> list[str]:
    # keys are f'{name}.{uuid}'
    return [key.split('.', 1)[0] for key in registry]


async def read_registry() -> dict:
    async with tractor.get_registry() as reg_portal:
        return await reg_portal.run_from_ns('self', 'get_registry')


def test_find_actor(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'findable',
                    enable_modules=[__name__],
                )
                pid = await portal.run(get_pid)

                async with tractor.wait_for_actor('findable'):
                    pass

                async with tractor.find_actor('findable') as found:
                    assert isinstance(found, tractor.Portal)
                    # same actor, reached over a new connection
                    assert await found.run(get_pid) == pid
                    assert await found.run(get_name) == 'findable'

                async with tractor.find_actor('nope') as found:
                    assert found is None

                await an.cancel()

    trio.run(main)


def test_find_actor_raise_on_none(reg_addr, start_method):
    async def main():
        with trio.fail_after(10):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, start_method),
            ):
                with pytest.raises(RuntimeError):
                    async with tractor.find_actor(
                        'nope',
                        raise_on_none=True,
                    ):
                        pass

    trio.run(main)


def test_wait_for_actor_spawned_concurrently(reg_addr, start_method):
    async def main():
        results: dict = {}
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:

                async def waiter():
                    async with tractor.wait_for_actor('late_comer') as p:
                        results['waited_at'] = time.monotonic()
                        results['name'] = await p.run(get_name)

                async def spawner():
                    await trio.sleep(0.3)
                    results['spawn_started'] = time.monotonic()
                    await an.start_actor(
                        'late_comer',
                        enable_modules=[__name__],
                    )

                async with trio.open_nursery() as tn:
                    tn.start_soon(waiter)
                    tn.start_soon(spawner)

                assert results['name'] == 'late_comer'
                assert results['waited_at'] >= results['spawn_started']
                await an.cancel()

    trio.run(main)


def test_get_registry_contents(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, start_method),
            ) as root:
                async with tractor.open_nursery() as an:
                    portals = []
                    for name in ('svc_a', 'svc_b'):
                        portals.append(await an.start_actor(
                            name,
                            enable_modules=[__name__],
                        ))
                    for name in ('svc_a', 'svc_b'):
                        async with tractor.wait_for_actor(name):
                            pass

                    # from the root, i.e. the registrar itself
                    registry = await read_registry()
                    names = names_in(registry)
                    assert sorted(names) == ['root', 'svc_a', 'svc_b']
                    assert f'{root.name}.{root.aid.uuid}' in registry
                    for addrs in registry.values():
                        assert addrs  # each actor registered >= 1 addr

                    # from a subactor, over IPC
                    assert await portals[0].run(registered_names) == [
                        'root', 'svc_a', 'svc_b',
                    ]

                    await an.cancel()

                # unregistration after teardown: the table shrinks back
                # to just the registrar
                with trio.fail_after(5):
                    while True:
                        names = names_in(await read_registry())
                        if names == ['root']:
                            break
                        await trio.sleep(0.1)

    trio.run(main)


def test_query_actor(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'queried',
                    enable_modules=[__name__],
                )
                addrs = [tuple(a) for a in await portal.run(accept_addrs)]
                async with tractor.wait_for_actor('queried'):
                    pass

                async with tractor.query_actor('queried') as (
                    addr,
                    reg_portal,
                ):
                    assert addr is not None
                    assert tuple(addr) in addrs
                    assert reg_portal is not None

                async with tractor.query_actor('not_there') as (
                    addr,
                    _,
                ):
                    assert addr is None

                await an.cancel()

    trio.run(main)


def test_sibling_discovery_from_subactor(reg_addr, start_method):
    '''
    A subactor finds a sibling through the registrar and calls it.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                await an.start_actor(
                    'sibling_b',
                    enable_modules=[__name__],
                )
                async with tractor.wait_for_actor('sibling_b'):
                    pass

                portal = await an.run_in_actor(
                    call_sibling,
                    name='sibling_a',
                    sibling='sibling_b',
                )
                assert await portal.wait_for_result() == {
                    'sibling_name': 'sibling_b',
                }
                await an.cancel()

    trio.run(main)


def test_discovery_needs_runtime():
    async def main():
        with trio.fail_after(5):
            with pytest.raises(NoRuntime):
                async with tractor.find_actor('anything'):
                    pass

    trio.run(main)


# ---- an actor registers (and unregisters) only itself ----

async def register_someone_else(method: str, victim: list[str]) -> str:
    '''From a subactor: ask the registrar to change another actor's entry.'''
    kwargs = {'uid': victim}
    if method == 'register_actor':
        kwargs['addr'] = ['127.0.0.1', 4]
    elif method == 'register_actor_addrs':
        # no addresses: only the child's own "registered" signal is at stake
        kwargs['addrs'] = []
    async with tractor.get_registry() as reg_portal:
        try:
            await reg_portal.run_from_ns('self', method, **kwargs)
        except tractor.RemoteActorError as err:
            return err.boxed_type.__name__
    return 'accepted'


@pytest.mark.parametrize(
    'method', ['register_actor', 'register_actor_addrs', 'unregister_actor'],
)
def test_an_actor_may_only_register_itself(reg_addr, start_method, method):
    async def main():
        with trio.fail_after(30):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                victim = await an.start_actor('victim', enable_modules=[__name__])
                meddler = await an.start_actor('meddler', enable_modules=[__name__])
                outcome = await meddler.run(
                    register_someone_else,
                    method=method,
                    victim=list(victim.chan.aid.uid),
                )
                assert outcome == 'PermissionError'
                # the victim is still registered
                assert 'victim' in await registered_names()
                await an.cancel()

    trio.run(main)
