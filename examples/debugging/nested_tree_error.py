'''
An error two levels down climbs the tree: crash REPLs in the grandchild,
then in its parent (the boxed error failed its task), then in the root.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def leaf_fails() -> None:
    await trio.sleep(0.05)
    raise ValueError('leaf broke')


async def middle() -> None:
    async with tractor.open_nursery() as an:
        await an.run_in_actor(leaf_fails, name='leaf')


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        await an.run_in_actor(middle, name='middle')


if __name__ == '__main__':
    trio.run(main)
