'''
Errors travel up the tree.

The root spawns a "middle" actor which spawns a "leaf" actor; the leaf
raises. The middle actor's nursery fails with the boxed error, which in
turn makes the middle actor's own task fail, so the root receives a box
of a box. The outer box remembers where the error really came from.

'''
import trio
import tractor


async def leaf() -> None:
    raise ValueError('the leaf gave up')


async def middle() -> None:
    async with tractor.open_nursery() as an:
        await an.run_in_actor(leaf, name='leaf')


async def main() -> None:
    async with tractor.open_root_actor():
        try:
            async with tractor.open_nursery() as an:
                await an.run_in_actor(middle, name='middle')

        except tractor.RemoteActorError as rae:
            print(f'boxed type (last hop): {rae.boxed_type_str}')
            print(f'source type: {rae.src_type_str}')
            print(f'raised in: {rae.src_uid[0]}')
            print(f'relayed by: {rae.relay_uid[0]}')
            print(f'relay path: {[uid[0] for uid in rae.relay_path]}')
            assert rae.is_inception()
            assert rae.src_type is ValueError
            print('caught the grandchild error at the root')


if __name__ == '__main__':
    trio.run(main)
