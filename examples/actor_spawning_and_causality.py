'''
Spawn a one-shot actor, let it compute something, read the answer.

`run_in_actor()` starts a new process running a single function. The
nursery block only exits once that child is done (structured
concurrency: no child outlives its nursery), and the child's return value
stays cached on the portal, so it can be read after the block.

'''
import trio
import tractor


async def compose_greeting(who: str) -> str:
    # we're in a subactor, a separate process, not the root
    assert not tractor.is_root_process()
    me = tractor.current_actor().name
    return f'greetings {who}, from {me}'


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.run_in_actor(
            compose_greeting,
            name='greeter',
            who='root',
        )

    # the nursery has exited: the child process is gone, yet its result
    # is still available.
    print(await portal.wait_for_result())


if __name__ == '__main__':
    trio.run(main)
