'''
An asyncio echo server, driven from trio.

The child actor is spawned with `infect_asyncio=True`: its thread runs an
asyncio event loop with trio as its guest. There it starts a plain
asyncio TCP server (`asyncio.start_server`) through
`to_asyncio.open_channel_from()`, which hands the server's port back to
the trio side; a `@tractor.context` endpoint passes it on to the parent
and keeps the server up until the parent is done. The parent, pure trio,
talks to the server over its own socket, then cancels the context: the
asyncio task is told (`TrioCancelled`) and closes the server.

'''
import asyncio

import trio
import tractor
from tractor import to_asyncio


async def handle_client(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    # echo every line back until the client hangs up
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()


async def serve_echo(chan: to_asyncio.LinkedTaskChannel) -> None:
    server = await asyncio.start_server(handle_client, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    chan.started_nowait(port)
    async with server:
        # until the trio side ends (`TrioCancelled` or `TrioTaskExited`
        # is raised here), then the server closes
        await server.serve_forever()


@tractor.context
async def echo_server(ctx: tractor.Context) -> None:
    async with to_asyncio.open_channel_from(serve_echo) as (_chan, port):
        await ctx.started(port)
        await trio.sleep_forever()


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'aio_echo',
            enable_modules=[__name__],
            infect_asyncio=True,
        )
        async with portal.open_context(echo_server) as (ctx, port):
            stream = await trio.open_tcp_stream('127.0.0.1', port)
            async with stream:
                rounds = 100
                for i in range(rounds):
                    line = f'line {i}\n'.encode()
                    await stream.send_all(line)
                    echoed = b''
                    while not echoed.endswith(b'\n'):
                        echoed += await stream.receive_some(1024)
                    assert echoed == line, echoed
            print(f'asyncio echo server answered {rounds} round trips')
            await ctx.cancel()

        await portal.cancel_actor()
        print('echo server actor cancelled')


if __name__ == '__main__':
    trio.run(main)
