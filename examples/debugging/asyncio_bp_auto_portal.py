'''
`breakpoint()` and `tractor.pause_from_sync()` in sync code called from
the asyncio tasks of an `infect_asyncio=True` child, with no greenback
set-up in user code: under `maybe_enable_greenback=True` the asyncio
tasks `tractor.to_asyncio` starts (`run_task()`, `open_channel_from()`)
get a greenback portal like every trio task does.
'''
import asyncio
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


def sync_with_builtin(x: int) -> int:
    tripled = x * 3
    breakpoint()
    return tripled


def sync_with_pause_from_sync(word: str) -> str:
    shout = word.upper()
    tractor.pause_from_sync()
    return shout


async def run_task_side() -> int:
    await asyncio.sleep(0.01)
    return sync_with_builtin(14)


async def channel_side(chan: tractor.to_asyncio.LinkedTaskChannel) -> None:
    chan.started_nowait('aio up')
    word = await chan.get()
    chan.send_nowait(sync_with_pause_from_sync(word))


async def infected_child() -> str:
    tripled = await tractor.to_asyncio.run_task(run_task_side)
    async with tractor.to_asyncio.open_channel_from(channel_side) as (chan, first):
        assert first == 'aio up'
        await chan.send('hello')
        shout = await chan.receive()
    return f'asyncio sides returned {tripled} and {shout}'


async def main() -> None:
    async with tractor.open_nursery(
        debug_mode=True,
        maybe_enable_greenback=True,
        **tree_kwargs(),
    ) as an:
        portal = await an.run_in_actor(
            infected_child, name='aio_auto', infect_asyncio=True,
        )
        print(f'root got: {await portal.wait_for_result()}')


if __name__ == '__main__':
    trio.run(main)
