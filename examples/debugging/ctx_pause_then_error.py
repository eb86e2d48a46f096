'''
`pause()` inside a `@tractor.context` task of a daemon child, then the
task raises: the crash REPL follows the pause in the same actor, and the
error reaches the root's `open_context()`.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


@tractor.context
async def pause_then_fail(ctx: tractor.Context) -> None:
    await ctx.started('ready')
    await tractor.pause()
    raise KeyError('after the pause')


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        portal = await an.start_actor('ctx_child', enable_modules=[__name__])
        try:
            async with portal.open_context(pause_then_fail) as (ctx, first):
                print(f'child said: {first}')
                await ctx.wait_for_result()
        except tractor.RemoteActorError as err:
            print(f'root caught: {err.boxed_type.__name__}')
        await an.cancel()


if __name__ == '__main__':
    trio.run(main)
