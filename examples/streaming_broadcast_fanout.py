'''
Fan one IPC stream out to several local tasks with
`MsgStream.subscribe()`.

The child streams a sequence of ticks; three tasks in the root each
subscribe to the same stream and every one of them sees every tick.
When the child ends its stream, every subscriber's `async for` ends.

'''
import trio
import tractor


@tractor.context
async def ticker(ctx: tractor.Context, count: int) -> int:
    await ctx.started()
    async with ctx.open_stream() as stream:
        for tick in range(count):
            await stream.send(tick)
            await trio.sleep(0.005)
    return count


async def main() -> None:
    seen: dict[str, list[int]] = {}

    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'ticker',
            enable_modules=[__name__],
        )
        async with (
            portal.open_context(ticker, count=30) as (ctx, _),
            ctx.open_stream() as stream,
        ):
            async def subscriber(
                name: str,
                task_status=trio.TASK_STATUS_IGNORED,
            ) -> None:
                # each subscription is a separate broadcast receiver
                async with stream.subscribe() as ticks:
                    seen[name] = []
                    task_status.started()
                    # a subscriber only sees values received after it
                    # subscribed: start reading once everyone is in
                    await all_subscribed.wait()
                    async for tick in ticks:
                        seen[name].append(tick)
                # ended: the child closed its side of the stream

            all_subscribed = trio.Event()
            async with trio.open_nursery() as tn:
                for name in ('alpha', 'beta', 'gamma'):
                    await tn.start(subscriber, name)
                all_subscribed.set()

        sent = await ctx.wait_for_result()
        await portal.cancel_actor()

    for name, ticks in seen.items():
        assert ticks == list(range(sent)), name
    print(f'all {len(seen)} subscribers saw all {sent} ticks')


if __name__ == '__main__':
    trio.run(main)
