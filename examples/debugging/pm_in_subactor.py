'''
`tractor.post_mortem()` by hand in a child's `except` block, then the
error goes on: the automatic crash REPL in the child, then the root's.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def inspect_then_fail() -> None:
    try:
        {}['missing']
    except KeyError:
        await tractor.post_mortem()
        raise


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        await an.run_in_actor(inspect_then_fail, name='inspector')


if __name__ == '__main__':
    trio.run(main)
