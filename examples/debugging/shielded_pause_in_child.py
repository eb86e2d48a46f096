'''
In a child: `pause()` from an already cancelled scope raises
`trio.Cancelled` (the child's log hints at `shield=True`) and takes no
lock; `pause(shield=True)` opens the REPL there all the same.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def pause_in_cancelled_scope() -> str:
    with trio.CancelScope() as cs:
        cs.cancel()
        try:
            await tractor.pause()
        except trio.Cancelled:
            print('child: unshielded pause was cancelled')
            await tractor.pause(shield=True)
            print('child: shielded pause continued')
            raise
    return f'cancelled scope caught: {cs.cancelled_caught}'


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        portal = await an.run_in_actor(pause_in_cancelled_scope, name='canceller')
        print(f'root got: {await portal.wait_for_result()}')


if __name__ == '__main__':
    trio.run(main)
