'''
`assert 0` in a debug-mode root: its crash REPL shows the
`AssertionError`, and after `c` the program exits with it.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def main() -> None:
    async with tractor.open_root_actor(debug_mode=True, **tree_kwargs()):
        await trio.sleep(0.05)
        assert 0, 'the root checked and failed'


if __name__ == '__main__':
    trio.run(main)
