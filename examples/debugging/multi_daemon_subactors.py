'''
Two daemons: one pauses inside a stream it feeds, the other fails a
`portal.run()`. The failure reaches the root while the first is in its
REPL: the root tears the tree down only once that REPL is released.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


@tractor.context
async def pausing_feed(ctx: tractor.Context) -> None:
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(3):
            await stream.send(i)
            await tractor.pause()
        await trio.sleep_forever()


async def name_error() -> None:
    await trio.sleep(0.5)
    doggypants  # noqa: F821


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        feeder = await an.start_actor('feeder', enable_modules=[__name__])
        failer = await an.start_actor('failer', enable_modules=[__name__])
        async with feeder.open_context(pausing_feed) as (ctx, _):
            async with ctx.open_stream() as stream:
                await stream.receive()
                await failer.run(name_error)


if __name__ == '__main__':
    trio.run(main)
