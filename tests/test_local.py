'''
Single-process facts: no-runtime errors, the root actor acting as its
own registrar, runtime state helpers. Nothing here spawns a subactor.

'''
import pytest
import trio
import tractor
from tractor._exceptions import NoRuntime
from tractor._testing import tractor_test
from tractor.runtime import _state


def root_kwargs(reg_addr, start_method) -> dict:
    return dict(
        registry_addrs=[reg_addr],
        start_method=start_method,
    )


def test_no_runtime_errors():
    with pytest.raises(NoRuntime) as excinfo:
        tractor.current_actor()
    assert isinstance(excinfo.value, RuntimeError)
    assert tractor.current_actor(err_on_no_runtime=False) is None

    async def main():
        with trio.fail_after(5):
            with pytest.raises(NoRuntime):
                tractor.current_actor()
            with pytest.raises(NoRuntime):
                async with tractor.wait_for_actor('someone'):
                    pass
            with pytest.raises(NoRuntime):
                async with tractor.get_registry():
                    pass

    trio.run(main)


@tractor_test(timeout=10)
async def test_registrar_registers_itself(reg_addr):
    actor = tractor.current_actor()
    assert actor.is_registrar is True
    assert isinstance(actor, tractor.Registrar)
    assert tractor.Arbiter is tractor.Registrar
    assert tractor.is_root_process()

    # exactly one entry: the registrar itself
    assert list(actor._registry) == [actor.aid.uid]
    addrs = actor._registry[actor.aid.uid]
    assert addrs

    # and it listens on the registry address it was given
    accept = [tuple(a) for a in actor.accept_addrs]
    assert tuple(reg_addr) in accept


@tractor_test(timeout=10)
async def test_get_registry_is_local(reg_addr):
    '''
    The registrar's own `get_registry()` portal works in-process: no
    IPC peers show up from using it.

    '''
    actor = tractor.current_actor()
    async with tractor.get_registry() as portal:
        assert portal.actor is actor
        registry = await portal.run_from_ns('self', 'get_registry')

    assert list(registry) == [f'{actor.name}.{actor.aid.uuid}']
    assert not actor.ipc_server._peers


@tractor_test(timeout=10)
async def test_registrar_find_self(reg_addr):
    '''
    The registrar's lookup endpoints answer for its own name, and
    nothing for unknown names.

    '''
    actor = tractor.current_actor()
    async with tractor.get_registry() as portal:
        addrs = await portal.run_from_ns('self', 'find_actor', name='root')
        assert addrs
        assert tuple(reg_addr) in [tuple(a) for a in addrs]

        missing = await portal.run_from_ns('self', 'find_actor', name='ghost')
        assert not missing

    assert actor.name == 'root'


def test_root_actor_basics(reg_addr, start_method):
    async def main():
        with trio.fail_after(10):
            async with tractor.open_root_actor(
                **root_kwargs(reg_addr, start_method),
            ) as actor:
                assert tractor.current_actor() is actor
                assert actor.name == 'root'
                assert actor.aid.name == 'root'
                assert isinstance(actor.aid.uuid, str)
                assert tractor.is_root_process()
                assert not tractor.debug_mode()

                rtvs = tractor.get_runtime_vars()
                assert rtvs['_is_root'] is True
                assert rtvs['_root_addrs']
                assert tuple(rtvs['_root_mailbox']) in [
                    tuple(a) for a in rtvs['_root_addrs']
                ]

                # a copy: mutating it changes nothing
                rtvs['_is_root'] = 'mutated'
                assert _state._runtime_vars['_is_root'] is True

            # torn down again
            assert tractor.current_actor(err_on_no_runtime=False) is None
            assert _state._runtime_vars['_root_mailbox'] in (
                None, (None, None), [None, None],
            )
            assert not _state._runtime_vars['_root_addrs']

    trio.run(main)


def test_fresh_roots_back_to_back(reg_addr, start_method):
    '''
    One process can open and close root actors repeatedly.

    '''
    async def main():
        uuids = set()
        with trio.fail_after(15):
            for _ in range(3):
                async with tractor.open_root_actor(
                    **root_kwargs(reg_addr, start_method),
                ) as actor:
                    uuids.add(actor.aid.uuid)
                    assert list(actor._registry) == [actor.aid.uid]
                assert tractor.current_actor(err_on_no_runtime=False) is None

        assert len(uuids) == 3

    trio.run(main)


def test_custom_root_name_and_modules(reg_addr, start_method):
    async def main():
        with trio.fail_after(10):
            async with tractor.open_root_actor(
                name='custom_root',
                enable_modules=[__name__],
                **root_kwargs(reg_addr, start_method),
            ) as actor:
                assert actor.name == 'custom_root'
                assert __name__ in actor.enable_modules
                async with tractor.get_registry() as portal:
                    registry = await portal.run_from_ns(
                        'self', 'get_registry',
                    )
                assert list(registry) == [f'custom_root.{actor.aid.uuid}']

    trio.run(main)
