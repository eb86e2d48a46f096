'''
The root's `open_context()` block fails while the child is in a pause
REPL: the child's context is cancelled only once that REPL is released,
so the user can still step over `await`s in the child meanwhile.
'''
import os

import trio
import tractor
from tractor.runtime import _debug_hooks


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


@tractor.context
async def pause_and_step(ctx: tractor.Context) -> None:
    await ctx.started('ready')
    async with ctx.open_stream() as stream:
        await stream.send('pausing')
        await tractor.pause()
        await trio.sleep(0.1)
        stepped = 'over an await'
        await trio.sleep(0.1)
        print(f'child stepped {stepped}')
        await trio.sleep_forever()


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        portal = await an.start_actor('stepper', enable_modules=[__name__])
        try:
            async with portal.open_context(pause_and_step) as (ctx, first):
                async with ctx.open_stream() as stream:
                    assert await stream.receive() == 'pausing'
                    # (for a deterministic demo: fail only once the child
                    # holds the tty, i.e. sits in its REPL)
                    with trio.fail_after(30):
                        while not await _debug_hooks.repl_in_use():
                            await trio.sleep(0.05)
                    print('root block failing')
                    raise ValueError('the root block failed')
        except ValueError as err:
            print(f'root caught: {err}')
        await an.cancel()


if __name__ == '__main__':
    trio.run(main)
