'''
Builtin `breakpoint()` and `tractor.pause_from_sync()` in sync code: in a
child's trio thread (through `greenback`, hence
`maybe_enable_greenback=True`) and in a `trio.to_thread` worker thread
(no greenback needed).
'''
import threading

import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


def sync_work(where: str) -> str:
    value = f'{where} in {threading.current_thread().name}'
    breakpoint()
    return value


def thread_work() -> str:
    value = 'from a worker thread'
    tractor.pause_from_sync()
    return value


async def child() -> str:
    first = sync_work('trio thread')
    second = await trio.to_thread.run_sync(thread_work)
    return f'{first} / {second}'


async def main() -> None:
    async with tractor.open_nursery(
        debug_mode=True,
        maybe_enable_greenback=True,
        **tree_kwargs(),
    ) as an:
        portal = await an.run_in_actor(child, name='syncer')
        print(f'root got: {await portal.wait_for_result()}')


if __name__ == '__main__':
    trio.run(main)
