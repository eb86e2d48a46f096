'''
Boxing of remote errors: metadata of a `RemoteActorError` after one
hop, after a relay through an intermediate actor ("inception"), and for
application exception types the receiving side does not know.

'''
import pytest
import trio
import tractor
import tractor._exceptions as texc
from tractor._testing import nursery_kwargs


class NotKnownAtRoot(Exception):
    '''
    Defined in this module only: `get_err_type()` never looks here, so
    the root cannot resolve it by name unless registered.

    '''


class RegisteredAppError(Exception):
    '''
    Same idea, but the test registers it with `reg_err_types()`.

    '''


# ---- functions run inside child actors ----

async def raise_name_error():
    return doggy  # noqa: F821 (this NameError is the point)


async def raise_value_error(msg: str):
    raise ValueError(msg)


async def raise_unknown():
    raise NotKnownAtRoot('app-level failure 0xbeef')


async def raise_registered():
    raise RegisteredAppError('registered failure')


async def spawn_failing_grandchild():
    '''
    Middle actor: spawn a grandchild that raises a `NameError` and let
    the nursery propagate it (a single error is re-raised bare).

    '''
    async with tractor.open_nursery() as an:
        await an.run_in_actor(
            raise_name_error,
            name='grandchild',
        )


# ---- helpers ----

def test_name_error_from_run_in_actor(reg_addr, start_method):
    '''
    A single failing `run_in_actor()` child: the nursery raises the
    bare box with full metadata.

    '''
    async def main():
        with trio.fail_after(15):
            with pytest.raises(tractor.RemoteActorError) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    await an.run_in_actor(
                        raise_name_error,
                        name='name_error_child',
                    )

            rae = excinfo.value
            assert type(rae) is tractor.RemoteActorError
            assert rae.boxed_type is NameError
            assert rae.boxed_type_str == 'NameError'
            assert rae.src_type is NameError
            assert rae.src_type_str == 'NameError'
            assert not rae.is_inception()

            assert isinstance(rae.src_uid, tuple)
            assert rae.src_uid[0] == 'name_error_child'
            assert isinstance(rae.src_uid[1], str) and rae.src_uid[1]
            assert tuple(rae.relay_uid) == tuple(rae.src_uid)
            assert [tuple(uid) for uid in rae.relay_path] == [rae.src_uid]

            # the remote traceback (formatted in the child) carries the
            # original message
            assert 'NameError' in rae.tb_str
            assert "name 'doggy' is not defined" in rae.tb_str
            assert 'raise_name_error' in rae.tb_str
            assert 'NameError' in rae.message

            # best-effort reconstruction of the original error
            orig = rae.unwrap()
            assert type(orig) is NameError

            assert not an._children

    trio.run(main)


def test_error_from_daemon_portal_run(reg_addr, start_method):
    '''
    An exception raised by an RPC task in a daemon arrives boxed at
    the caller of `portal.run()`; the daemon keeps serving.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'flaky_daemon',
                    enable_modules=[__name__],
                )
                with pytest.raises(tractor.RemoteActorError) as excinfo:
                    await portal.run(
                        raise_value_error,
                        msg='a very specific complaint',
                    )

                rae = excinfo.value
                assert rae.boxed_type is ValueError
                assert rae.src_uid[0] == 'flaky_daemon'
                assert 'a very specific complaint' in rae.tb_str
                assert 'ValueError' in rae.tb_str

                # no harm done to the daemon itself
                with pytest.raises(tractor.RemoteActorError) as excinfo:
                    await portal.run(raise_name_error)
                assert excinfo.value.boxed_type is NameError

                await portal.cancel_actor()

    trio.run(main)


def test_relayed_grandchild_error(reg_addr, start_method):
    '''
    grandchild raises `NameError` -> the middle actor's task fails with
    the box -> the root receives a box of a box ("inception").

    '''
    async def main():
        with trio.fail_after(20):
            with pytest.raises(tractor.RemoteActorError) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    await an.run_in_actor(
                        spawn_failing_grandchild,
                        name='child',
                    )

            rae = excinfo.value
            # boxed at the last hop: the middle actor failed with a box
            assert rae.boxed_type is tractor.RemoteActorError
            assert rae.boxed_type_str == 'RemoteActorError'
            # ... but the source of it all is remembered
            assert rae.src_type is NameError
            assert rae.src_type_str == 'NameError'
            assert rae.src_uid[0] == 'grandchild'
            assert rae.relay_uid[0] == 'child'
            assert rae.is_inception()

            path_names = [uid[0] for uid in rae.relay_path]
            assert path_names[0] == 'grandchild'
            assert path_names[-1] == 'child'

            assert 'NameError' in rae.tb_str

            assert not an._children

    trio.run(main)


def test_unknown_app_error_keeps_type_name(reg_addr, start_method):
    '''
    An exception type the root cannot resolve: the box still carries
    its name and traceback text.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'app_daemon',
                    enable_modules=[__name__],
                )
                with pytest.raises(tractor.RemoteActorError) as excinfo:
                    await portal.run(raise_unknown)

                rae = excinfo.value
                assert rae.boxed_type is None
                assert rae.boxed_type_str == 'NotKnownAtRoot'
                assert rae.src_type_str == 'NotKnownAtRoot'
                assert rae.src_uid[0] == 'app_daemon'
                assert 'NotKnownAtRoot' in rae.tb_str
                assert 'app-level failure 0xbeef' in rae.tb_str

                # unwrapping an unknown type falls back to RuntimeError
                orig = rae.unwrap()
                assert isinstance(orig, RuntimeError)
                assert 'NotKnownAtRoot' in str(orig)

                await portal.cancel_actor()

    trio.run(main)


def test_registered_app_error_resolves(reg_addr, start_method):
    '''
    After `reg_err_types()` the receiving side resolves the type.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'app_daemon_2',
                    enable_modules=[__name__],
                )
                with pytest.raises(tractor.RemoteActorError) as excinfo:
                    await portal.run(raise_registered)

                rae = excinfo.value
                assert rae.boxed_type is RegisteredAppError
                assert rae.src_type is RegisteredAppError
                assert 'registered failure' in rae.tb_str

                await portal.cancel_actor()

    texc.reg_err_types([RegisteredAppError])
    try:
        assert texc.get_err_type('RegisteredAppError') is RegisteredAppError
        trio.run(main)
    finally:
        # keep the process-global type table clean for other tests
        if hasattr(texc, 'RegisteredAppError'):
            delattr(texc, 'RegisteredAppError')

    assert texc.get_err_type('RegisteredAppError') is None
