'''
The root's `fail_after()` fires while a child sits in its crash REPL:
the root waits for that REPL to end before it cancels anything, then
reports the timeout.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def name_error() -> None:
    doggypants  # noqa: F821


async def main() -> None:
    with trio.fail_after(2):
        async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
            await an.run_in_actor(name_error, name='crasher')
            await trio.sleep_forever()


if __name__ == '__main__':
    trio.run(main)
