'''
`tractor.open_actor_cluster()`: workers spawned at once under
`<parent>.<name>`, portals by name, one dialog per worker opened with
`gather_contexts()`, and the whole cluster gone after the block.
'''
from __future__ import annotations

import pytest
import trio

import tractor
from tractor._testing import nursery_kwargs
from tractor.trionics import gather_contexts


@tractor.context
async def echo_doubled(ctx: tractor.Context) -> None:
    await ctx.started(tractor.current_actor().name)
    async with ctx.open_stream() as stream:
        async for value in stream:
            await stream.send(value * 2)


async def whoami() -> str:
    return tractor.current_actor().name


@pytest.mark.parametrize('hard_kill', [False, True], ids=['graceful', 'hard_kill'])
def test_cluster_streams_to_every_worker(reg_addr, start_method, hard_kill):
    async def main():
        with trio.fail_after(25):
            async with (
                tractor.open_actor_cluster(
                    modules=[__name__],
                    count=3,
                    names=['a', 'b', 'c'],
                    hard_kill=hard_kill,
                    **nursery_kwargs(reg_addr, start_method),
                ) as portals,
                gather_contexts(
                    [portal.open_context(echo_doubled) for portal in portals.values()]
                ) as contexts,
                gather_contexts(
                    [ctx.open_stream() for ctx, _ in contexts]
                ) as streams,
            ):
                assert list(portals) == ['root.a', 'root.b', 'root.c']
                assert [first for _, first in contexts] == list(portals)
                for round_ in range(3):
                    for stream in streams:
                        await stream.send(round_)
                    assert [await s.receive() for s in streams] == [round_ * 2] * 3
                procs = [portal.chan.aid for portal in portals.values()]
                assert len({aid.uuid for aid in procs}) == 3
            # every worker went with the block
            for portal in portals.values():
                assert not portal.chan.connected()

    trio.run(main)


def test_cluster_defaults_and_bad_names(reg_addr, start_method):
    async def main():
        with trio.fail_after(25):
            async with tractor.open_root_actor(**nursery_kwargs(reg_addr, start_method)):
                with pytest.raises(ValueError, match='3 workers'):
                    async with tractor.open_actor_cluster(
                        modules=[__name__], count=3, names=['only-one'],
                    ):
                        raise AssertionError('must not open')
                async with tractor.open_actor_cluster(
                    modules=[__name__], count=2,
                ) as portals:
                    assert sorted(portals) == ['root.worker_0', 'root.worker_1']
                    names = [await p.run(whoami) for p in portals.values()]
                    assert names == list(portals)

    trio.run(main)
