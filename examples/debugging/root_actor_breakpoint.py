'''
`tractor.pause()` in the root actor: a `(Pdb+)` REPL at the caller's
frame; `c` continues, `q` raises `bdb.BdbQuit`.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get('TRACTOR_EXAMPLE_REG_PORT')
    return {'registry_addrs': [('127.0.0.1', int(port))]} if port else {}


async def main() -> None:
    async with tractor.open_root_actor(debug_mode=True, **tree_kwargs()):
        await trio.sleep(0.1)
        await tractor.pause()
        print('root continued past its pause')


if __name__ == '__main__':
    trio.run(main)
