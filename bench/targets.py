'''
What the benchmark's actors run. A module of its own, so that a child
imports just this (and tractor), not the benchmark's harness: its
`__main__` is not replayed (`inherit_parent_main=False`), or every spawn
would also pay for importing `json`, `statistics`, `compileall` ...
'''
import tractor


async def noop() -> None:
    return None


@tractor.context
async def produce(ctx: tractor.Context, count: int) -> int:
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(count):
            await stream.send(i)
    return count


@tractor.context
async def echo(ctx: tractor.Context) -> int:
    await ctx.started()
    n = 0
    async with ctx.open_stream() as stream:
        async for msg in stream:
            await stream.send(msg)
            n += 1
    return n
