'''
`pause()` from an already cancelled scope raises `trio.Cancelled` (with
a hint); `pause(shield=True)` still opens the REPL there, and
`post_mortem()` works in a `trio.Cancelled` handler.
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
        with trio.CancelScope() as cs:
            cs.cancel()
            try:
                await tractor.pause()
            except trio.Cancelled:
                print('unshielded pause was cancelled')
                await tractor.pause(shield=True)
                print('shielded pause continued')
                try:
                    raise
                except trio.Cancelled:
                    await tractor.post_mortem()
                raise
        print('scope cancelled, root done')


if __name__ == '__main__':
    trio.run(main)
