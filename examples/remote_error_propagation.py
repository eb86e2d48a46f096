'''
One failing child takes the whole nursery down.

Three idle daemons and one one-shot actor that fails. The failure is
shipped to the parent, which cancels every other child (one-cancels-all)
and re-raises the error, boxed as a `RemoteActorError`.

'''
import trio
import tractor


async def check_invariant() -> None:
    assert 1 + 1 == 3, 'arithmetic is broken'


async def main() -> None:
    async with tractor.open_nursery() as an:
        for i in range(3):
            # idle daemons: they would live forever if nobody cancelled
            await an.start_actor(f'idler_{i}', enable_modules=[__name__])

        await an.run_in_actor(check_invariant, name='checker')


if __name__ == '__main__':
    try:
        trio.run(main)
    except tractor.RemoteActorError as rae:
        assert rae.boxed_type is AssertionError
        print(f'the tree was torn down by {rae.src_uid[0]!r} failing')
    else:
        raise RuntimeError('the failure should have propagated')
