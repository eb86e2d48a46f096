'''
Two tasks of one child pause at the same time: the second waits for the
first one's REPL to end (tasks of an actor queue on its local lock, then
on the tree's). Each task pauses twice in a row: stepping (`n`) onto the
second `pause()` while already in the REPL does nothing, the REPL just
goes on to the next line.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def pause_twice(tag: str, done: list[str]) -> None:
    await tractor.pause()
    await tractor.pause()
    done.append(f'{tag} went past both pauses')


async def two_local_pausers() -> str:
    done: list[str] = []
    async with trio.open_nursery() as tn:
        tn.start_soon(pause_twice, 'first', done, name='pauser_task_first')
        tn.start_soon(pause_twice, 'second', done, name='pauser_task_second')
    return ' / '.join(sorted(done))


async def main() -> None:
    async with tractor.open_nursery(debug_mode=True, **tree_kwargs()) as an:
        portal = await an.run_in_actor(two_local_pausers, name='two_tasks')
        print(f'root got: {await portal.wait_for_result()}')


if __name__ == '__main__':
    trio.run(main)
