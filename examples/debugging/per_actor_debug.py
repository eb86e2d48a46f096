'''
Debug mode for one child only (`start_actor(..., debug_mode=True)`): its
crash opens a REPL; its sibling, not in debug mode, fails plainly; the
root (not in debug mode either) just raises.
'''
import os

import trio
import tractor


def tree_kwargs() -> dict:
    # the tests pick a free registry port; run by hand, the defaults
    port = os.environ.get("TRACTOR_EXAMPLE_REG_PORT")
    return {"registry_addrs": [("127.0.0.1", int(port))]} if port else {}


async def boom(tag: str) -> None:
    raise RuntimeError(f'{tag} blew up')


async def main() -> None:
    async with tractor.open_nursery(**tree_kwargs()) as an:
        debugged = await an.start_actor(
            'debugged', enable_modules=[__name__], debug_mode=True,
        )
        plain = await an.start_actor('plain', enable_modules=[__name__])
        for portal, tag in ((plain, 'plain'), (debugged, 'debugged')):
            try:
                await portal.run(boom, tag=tag)
            except tractor.RemoteActorError as err:
                print(f'root caught: {err.boxed_type.__name__} from {tag}')
        await an.cancel()


if __name__ == '__main__':
    trio.run(main)
