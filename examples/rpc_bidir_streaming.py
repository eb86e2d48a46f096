'''
Ping-pong over a bidirectional `@tractor.context` stream.

The child answers every "ping" with a "pong" until the parent closes its
side of the stream; its `async for` then ends normally, so the loop's
`else:` clause runs, and the child returns how many rounds it served.

'''
import trio
import tractor


@tractor.context
async def pong_server(ctx: tractor.Context, greeting: str) -> str:
    # unblock the parent's `open_context()`, handing it a first value
    await ctx.started(f'{greeting} from {tractor.current_actor().name}')

    rounds = 0
    async with ctx.open_stream() as stream:
        async for msg in stream:
            assert msg == f'ping {rounds}'
            await stream.send(f'pong {rounds}')
            rounds += 1
        else:
            # only reached when the parent ended the stream
            ended = 'the parent closed the stream'

    return f'{ended} after {rounds} rounds'


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'ponger',
            enable_modules=[__name__],
        )
        async with portal.open_context(
            pong_server,
            greeting='hello',
        ) as (ctx, first):
            print(f'child started with: {first!r}')

            async with ctx.open_stream() as stream:
                for i in range(10):
                    await stream.send(f'ping {i}')
                    reply = await stream.receive()
                    assert reply == f'pong {i}'
            # leaving the block above sent `Stop` to the child

            result = await ctx.wait_for_result()
            print(f'child says: {result}')

        await portal.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
