'''
`breakpoint()` in sync code called from an asyncio task of an
`infect_asyncio=True` child: the task needs a greenback portal (it
shares trio's thread, so it can neither block for trio nor enter it).
'''
import asyncio
import os

import greenback
import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


def sync_in_asyncio(x: int) -> int:
    doubled = x * 2
    breakpoint()
    return doubled


async def aio_side() -> int:
    await greenback.ensure_portal()
    await asyncio.sleep(0.01)
    return sync_in_asyncio(21)


async def infected_child() -> str:
    result = await tractor.to_asyncio.run_task(aio_side)
    return f'asyncio side returned {result}'


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        portal = await an.run_in_actor(
            infected_child, name='aio_child', infect_asyncio=True,
        )
        print(f'root got: {await portal.wait_for_result()}')


if __name__ == '__main__':
    trio.run(main)
