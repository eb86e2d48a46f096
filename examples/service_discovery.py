'''
Finding actors by name.

Every actor registers its address with the registrar (here: the root
actor itself). Anyone can then ask the registrar for its table, or wait
until an actor with a given name shows up.

'''
import trio
import tractor


async def main() -> None:
    async with tractor.open_nursery() as an:
        for name in ('alpha', 'beta', 'gamma'):
            # no modules: these actors only answer runtime requests
            await an.start_actor(name)

        for name in ('alpha', 'beta', 'gamma'):
            # blocks until the actor has registered
            async with tractor.wait_for_actor(name) as portal:
                print(f'found {name} via {portal.chan.raddr}')

        async with tractor.get_registry() as reg:
            registry = await reg.run_from_ns('self', 'get_registry')

        names = sorted(key.split('.', 1)[0] for key in registry)
        print(f'registered actors: {names}')
        assert {'alpha', 'beta', 'gamma'} <= set(names)

        # tear down all the daemons at once
        await an.cancel()


if __name__ == '__main__':
    trio.run(main)
