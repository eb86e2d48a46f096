'''
`tractor.pause()` in a loop of a `run_in_actor` child: each `c`
re-enters the REPL on the next round; `q` raises `bdb.BdbQuit` in the
child, which reaches the root as a `RemoteActorError` and opens the
root's crash REPL.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def breakpoint_forever() -> None:
    for i in range(1000):
        await trio.sleep(0.05)
        await tractor.pause()
        print(f'child round {i} done')


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        await an.run_in_actor(breakpoint_forever, name='pauser')


if __name__ == '__main__':
    trio.run(main)
