'''
Two children pause at the same time: the tty lock gives them the
terminal one after the other; after both continue the tree ends.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def pause_once(tag: str) -> str:
    await tractor.pause()
    return f'{tag} continued'


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        p1 = await an.run_in_actor(pause_once, name='pauser_a', tag='a')
        p2 = await an.run_in_actor(pause_once, name='pauser_b', tag='b')
        print(await p1.wait_for_result(), await p2.wait_for_result())


if __name__ == '__main__':
    trio.run(main)
