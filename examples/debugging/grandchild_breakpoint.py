'''
`tractor.pause()` two levels down: the grandchild takes the tty lock from
the root over IPC; its REPL header names it.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def grandchild_pauses() -> str:
    await tractor.pause()
    return 'grandchild done'


async def spawn_grandchild() -> str:
    async with tractor.open_nursery() as an:
        portal = await an.run_in_actor(grandchild_pauses, name='grandchild')
        return await portal.wait_for_result()


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        portal = await an.run_in_actor(spawn_grandchild, name='child')
        print(f'root got: {await portal.wait_for_result()}')


if __name__ == '__main__':
    trio.run(main)
