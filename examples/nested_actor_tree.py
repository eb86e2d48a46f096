'''
A three-level actor tree driven through a context:

    root ── supervisor ─┬─ leaf_0
                        ├─ leaf_1
                        └─ leaf_2

The root opens a `@tractor.context` in the mid-tier `supervisor`, which
spawns the leaves, reports their names through `ctx.started()`, asks
each leaf for some work and returns the aggregate, which the root reads
with `ctx.wait_for_result()`.

'''
import trio
import tractor


async def work(n: int) -> dict:
    '''Runs in a leaf.'''
    me = tractor.current_actor()
    return {'leaf': me.name, 'n': n, 'square': n * n}


@tractor.context
async def supervise_leaves(ctx: tractor.Context, n_leaves: int) -> list[dict]:
    '''Runs in the supervisor (the middle of the tree).'''
    results: list[dict] = []
    async with tractor.open_nursery() as an:
        portals = [
            await an.start_actor(f'leaf_{i}', enable_modules=[__name__])
            for i in range(n_leaves)
        ]
        # tell the root who we spawned before doing any work
        await ctx.started([p.chan.aid.name for p in portals])

        async def ask(i: int, portal) -> None:
            results.append(await portal.run(work, n=i + 1))

        async with trio.open_nursery() as tn:
            for i, portal in enumerate(portals):
                tn.start_soon(ask, i, portal)

        # the leaves are daemons: cancel them before returning
        await an.cancel()

    return sorted(results, key=lambda r: r['leaf'])


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'supervisor',
            enable_modules=[__name__],
        )
        async with portal.open_context(
            supervise_leaves,
            n_leaves=3,
        ) as (ctx, leaf_names):
            print(f'supervisor spawned: {leaf_names}')
            results = await ctx.wait_for_result()

        for r in results:
            print(f"  {r['leaf']}: {r['n']}^2 = {r['square']}")
        total = sum(r['square'] for r in results)
        assert total == 1 + 4 + 9
        print(f'tree result: {total}')

        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
