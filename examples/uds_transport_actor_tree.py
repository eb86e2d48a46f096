'''
An actor tree talking over Unix domain sockets only.

`enable_transports=['uds']` on the root applies to the whole tree. A
UDS channel's remote address is a socket file, and since the kernel
tells us the pid of the peer process on the other end, the address also
carries that pid.

'''
import os

import trio
import tractor


async def whoami() -> dict:
    return {
        'name': tractor.current_actor().name,
        'pid': os.getpid(),
    }


@tractor.context
async def child_view(ctx: tractor.Context) -> str:
    '''From inside the child: our channel to the parent is UDS as well.'''
    await ctx.started()
    return ctx.chan.raddr.proto_key


async def main() -> None:
    async with tractor.open_nursery(enable_transports=['uds']) as an:
        portal = await an.start_actor(
            'uds_child',
            enable_modules=[__name__],
        )
        raddr = portal.chan.raddr
        info = await portal.run(whoami)

        print(f'transport: {raddr.proto_key}')
        print(f'channel socket file: {raddr.sockpath}')
        print(f"peer pid from the kernel: {raddr.maybe_pid} (child reports {info['pid']})")

        assert raddr.proto_key == 'uds'
        assert raddr.maybe_pid == info['pid']

        async with portal.open_context(child_view) as (ctx, _):
            assert await ctx.wait_for_result() == 'uds'

        await portal.cancel_actor()
    print('uds actor tree done')


if __name__ == '__main__':
    trio.run(main)
