'''
A child that fails before it connects back to its parent: the parent's
error carries the child's reason (its exception's type and text), on
every backend, never a bare exit code.

'''
import pytest
import trio
import tractor
from tractor._exceptions import ActorFailure
from tractor._testing import nursery_kwargs


async def never_runs() -> None:
    raise AssertionError('the child should not have booted')


@pytest.mark.parametrize('infect_asyncio', [False, True], ids=['trio', 'aio'])
def test_child_boot_failure_reason_reaches_the_parent(
    reg_addr,
    start_method,
    infect_asyncio,
):
    async def main():
        with trio.fail_after(20):
            with pytest.raises(ActorFailure) as info:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    # the child's own log setup refuses the level, before
                    # it ever connects back
                    await an.start_actor(
                        'bad_loglevel',
                        loglevel='NO_SUCH_LEVEL',
                        infect_asyncio=infect_asyncio,
                    )
        return info.value

    failure = trio.run(main)
    message = str(failure)
    assert 'before connecting back' in message
    assert "ValueError: Unknown log level: 'NO_SUCH_LEVEL'" in message, message


def test_run_in_actor_boot_failure_reason(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            with pytest.raises(ActorFailure, match='Unknown log level'):
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    await an.run_in_actor(never_runs, loglevel='NO_SUCH_LEVEL')

    trio.run(main)
