'''
Two actors meet.

Two sibling actors are started at the same time; each looks the other up
by name through the registrar and calls a function in it.

A `run_in_actor()` child is torn down as soon as its function returns,
so each actor also waits until the *other* one has called it before
finishing; otherwise the first to finish could vanish before its sibling
got to say hello.

'''
import trio
import tractor


# set (in each actor's own process) once the sibling has called us
_greeted = trio.Event()


async def introduce() -> str:
    _greeted.set()
    return f"hello, I'm {tractor.current_actor().name}"


async def meet(other: str) -> str:
    # wait (if needed) until the other actor has registered, then call
    # into it over a fresh connection
    async with tractor.wait_for_actor(other) as portal:
        answer = await portal.run(introduce)

    # stick around until our sibling has heard from us too
    await _greeted.wait()
    return f'{tractor.current_actor().name} heard: "{answer}"'


async def main() -> None:
    async with tractor.open_nursery() as an:
        ada = await an.run_in_actor(meet, name='ada', other='grace')
        grace = await an.run_in_actor(meet, name='grace', other='ada')

        print(await ada.wait_for_result())
        print(await grace.wait_for_result())


if __name__ == '__main__':
    trio.run(main)
