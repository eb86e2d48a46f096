'''
A `NameError` in a `run_in_actor` child: a post-mortem REPL opens in the
child first (with its traceback), then, once the error reached it, in
the root.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def name_error() -> None:
    await trio.sleep(0.05)
    doggypants  # noqa: F821, the crash this example is about


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        await an.run_in_actor(name_error, name='name_error')


if __name__ == '__main__':
    trio.run(main)
