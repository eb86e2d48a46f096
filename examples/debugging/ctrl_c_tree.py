'''
Ctrl-C of a debug-mode tree with no REPL open: the subactors leave the
signal to the root (a REPL could be open anywhere), which ends the whole
tree in order, as without debug mode.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def sleeper() -> None:
    await trio.sleep_forever()


async def middle() -> None:
    async with tractor.open_nursery() as an:
        await an.run_in_actor(sleeper, name='leaf')
        await trio.sleep_forever()


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        await an.run_in_actor(middle, name='middle')
        async with tractor.wait_for_actor('leaf'):
            pass
        print('tree is up, press Ctrl-C', flush=True)
        await trio.sleep_forever()


if __name__ == '__main__':
    try:
        trio.run(main)
    except KeyboardInterrupt:
        print('tree ended by Ctrl-C')
