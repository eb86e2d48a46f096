'''
Every actor is a process: run one never-ending task per CPU and tear
the whole tree down with an error.

One subactor per CPU each runs a `@tractor.context` task that never
ends on its own. After a couple of seconds the root raises; the error
cancels every child task and reaps every process, leaving nothing
behind. The script catches the error to show that.

'''
import multiprocessing
import os

import trio
import tractor


@tractor.context
async def spin_forever(ctx: tractor.Context) -> None:
    await ctx.started(os.getpid())
    while True:
        await trio.sleep(0.1)


class Enough(Exception):
    '''Raised by the root on purpose to tear the tree down.'''


async def main() -> None:
    n_cpus = multiprocessing.cpu_count()
    async with tractor.open_nursery() as an:
        portals = [
            await an.start_actor(f'worker_{i}', enable_modules=[__name__])
            for i in range(n_cpus)
        ]
        pids: list[int] = []

        async def run_forever(portal) -> None:
            async with portal.open_context(spin_forever) as (ctx, pid):
                pids.append(pid)
                await trio.sleep_forever()

        async with trio.open_nursery() as tn:
            for portal in portals:
                tn.start_soon(run_forever, portal)

            await trio.sleep(2)
            print(f'{len(pids)} worker processes running: {sorted(pids)}')
            assert len(set(pids)) == n_cpus
            raise Enough('this is enough, tear it all down')


if __name__ == '__main__':
    try:
        trio.run(main)
    except BaseException as err:
        # the error may come back wrapped in an exception group
        leaves = err.exceptions if isinstance(err, BaseExceptionGroup) else [err]
        assert any(isinstance(leaf, Enough) for leaf in leaves), err
        print('whole tree cancelled, no processes left behind')
