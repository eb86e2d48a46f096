'''
An `AssertionError` in a `run_in_actor` task whose result the root's
body awaits: crash REPL in the child, then the root's, and the program
exits with the boxed error.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def check_it() -> None:
    await trio.sleep(0.05)
    assert 1 == 2, 'the child checked and failed'


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        portal = await an.run_in_actor(check_it, name='checker')
        await portal.wait_for_result()


if __name__ == '__main__':
    trio.run(main)
