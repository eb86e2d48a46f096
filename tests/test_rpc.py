'''
RPC through `Portal.run()` / `Portal.run_from_ns()`: msgpack
round-trips of arguments and results, and the errors for bad targets
(unexposed module, missing function, bad kwargs, non-async functions).

'''
import pytest
import trio
import tractor
from tractor._testing import nursery_kwargs


# ---- functions run inside child actors ----

async def echo(value):
    return value


async def describe(value) -> dict:
    '''
    Return the value together with its type name as seen in the child.

    '''
    return {
        'type': type(value).__name__,
        'value': value,
    }


async def combine(a: int, b: str, c: list | None = None) -> dict:
    return {'a': a, 'b': b, 'c': c}


async def counter() -> int:
    return 1


def not_async() -> int:
    return 1


# ---- helpers ----

BIG: int = 2**63 - 1

# (id, value sent, value expected back, type name in the child)
ROUND_TRIPS: list[tuple] = [
    ('none', None, None, 'NoneType'),
    ('true', True, True, 'bool'),
    ('false', False, False, 'bool'),
    ('zero', 0, 0, 'int'),
    ('small-int', 7, 7, 'int'),
    ('negative-int', -42, -42, 'int'),
    ('big-int', BIG, BIG, 'int'),
    ('u64-max', 2**64 - 1, 2**64 - 1, 'int'),
    ('i64-min', -2**63, -2**63, 'int'),
    ('float', 3.25, 3.25, 'float'),
    ('negative-float', -1.5e300, -1.5e300, 'float'),
    ('inf', float('inf'), float('inf'), 'float'),
    ('str', 'hello', 'hello', 'str'),
    ('empty-str', '', '', 'str'),
    (
        'unicode',
        'h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e \U0001F389',
        'h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e \U0001F389',
        'str',
    ),
    ('bytes', b'\x00\x01\xfe\xff' * 8, b'\x00\x01\xfe\xff' * 8, 'bytes'),
    ('empty-bytes', b'', b'', 'bytes'),
    ('list', [1, 'two', 3.0, None], [1, 'two', 3.0, None], 'list'),
    ('empty-list', [], [], 'list'),
    ('tuple', (1, 2, 'three'), [1, 2, 'three'], 'list'),
    (
        'nested-dict',
        {'a': {'b': {'c': [1, {'d': b'e'}]}}, 'f': None, 'g': True},
        {'a': {'b': {'c': [1, {'d': b'e'}]}}, 'f': None, 'g': True},
        'dict',
    ),
    ('empty-dict', {}, {}, 'dict'),
    (
        'list-of-tuples',
        [(1, 2), ('x', 'y')],
        [[1, 2], ['x', 'y']],
        'list',
    ),
]


def test_msgpack_round_trips(reg_addr, start_method):
    '''
    Every msgpack-native type survives a trip through `portal.run()`
    both as an argument and as a result; tuples come back as lists.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'echoer',
                    enable_modules=[__name__],
                )
                for case_id, sent, expected, child_type in ROUND_TRIPS:
                    got = await portal.run(echo, value=sent)
                    assert got == expected, case_id
                    assert type(got) is type(expected), case_id

                    seen = await portal.run(describe, value=sent)
                    assert seen['type'] == child_type, case_id
                    assert seen['value'] == expected, case_id

                # booleans must not degrade into ints (and vice versa)
                assert await portal.run(echo, value=True) is True
                one = await portal.run(echo, value=1)
                assert one == 1 and type(one) is int

                # several kwargs at once, some defaulted
                assert await portal.run(
                    combine, a=1, b='x',
                ) == {'a': 1, 'b': 'x', 'c': None}
                assert await portal.run(
                    combine, a=2, b='y', c=(1, 2),
                ) == {'a': 2, 'b': 'y', 'c': [1, 2]}

                await portal.cancel_actor()

    trio.run(main)


def test_large_payload(reg_addr, start_method):
    '''
    A payload of a few MiB crosses the wire intact.

    '''
    blob: bytes = bytes(range(256)) * (4 * 4096)  # 4 MiB
    text: str = 'abc\u00e9' * 100_000

    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'bulk',
                    enable_modules=[__name__],
                )
                assert await portal.run(echo, value=blob) == blob
                assert await portal.run(echo, value=text) == text
                await portal.cancel_actor()

    trio.run(main)


def test_module_not_exposed(reg_addr, start_method):
    '''
    Calling into a module the child did not enable boxes a
    `ModuleNotExposed`; the child keeps serving afterwards.

    '''
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'restricted',
                    enable_modules=[__name__],
                )

                with pytest.raises(tractor.RemoteActorError) as excinfo:
                    await portal.run_from_ns('os', 'getpid')

                rae = excinfo.value
                assert rae.boxed_type is tractor.ModuleNotExposed
                assert issubclass(rae.boxed_type, ModuleNotFoundError)
                assert rae.src_uid[0] == 'restricted'

                # an async function object from a module the child never
                # enabled fails the same way
                with pytest.raises(tractor.RemoteActorError) as excinfo:
                    await portal.run(trio.sleep, seconds=0)
                assert excinfo.value.boxed_type is tractor.ModuleNotExposed

                # still serving
                assert await portal.run(echo, value='alive') == 'alive'
                await portal.cancel_actor()

    trio.run(main)


def test_missing_function(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'sparse',
                    enable_modules=[__name__],
                )

                with pytest.raises(tractor.RemoteActorError) as excinfo:
                    await portal.run_from_ns(__name__, 'nope')

                rae = excinfo.value
                assert rae.boxed_type is AttributeError
                assert rae.src_uid[0] == 'sparse'

                # the same module's real functions still work, both ways
                assert await portal.run_from_ns(
                    __name__, 'echo', value=5,
                ) == 5
                assert await portal.run(counter) == 1
                await portal.cancel_actor()

    trio.run(main)


def test_bad_kwargs(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'strict',
                    enable_modules=[__name__],
                )

                # unexpected kwarg
                with pytest.raises(tractor.RemoteActorError) as excinfo:
                    await portal.run(echo, value=1, bogus=2)
                assert excinfo.value.boxed_type is TypeError

                # missing required kwarg
                with pytest.raises(tractor.RemoteActorError) as excinfo:
                    await portal.run(combine, a=1)
                assert excinfo.value.boxed_type is TypeError
                assert "'b'" in excinfo.value.tb_str

                # still serving
                assert await portal.run(echo, value=[1]) == [1]
                await portal.cancel_actor()

    trio.run(main)


def test_portal_run_sync_function_is_local_type_error(
    reg_addr,
    start_method,
):
    async def main():
        with trio.fail_after(15):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'picky',
                    enable_modules=[__name__],
                )
                with pytest.raises(TypeError):
                    await portal.run(not_async)

                # a local error, not a boxed one
                try:
                    await portal.run(not_async)
                except TypeError as err:
                    assert not isinstance(err, tractor.RemoteActorError)

                assert await portal.run(echo, value='ok') == 'ok'
                await portal.cancel_actor()

    trio.run(main)


def test_run_in_actor_sync_function(reg_addr, start_method):
    async def main():
        with trio.fail_after(15):
            with pytest.raises(TypeError) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    await an.run_in_actor(not_async)

            assert not isinstance(
                excinfo.value,
                tractor.RemoteActorError,
            )
            assert not an._children

    trio.run(main)


def test_remote_bad_kwargs_from_run_in_actor(reg_addr, start_method):
    '''
    A bad kwarg for a `run_in_actor()` target surfaces as a boxed
    `TypeError`.

    '''
    async def main():
        with trio.fail_after(15):
            an = None
            with pytest.raises(BaseException) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    portal = await an.run_in_actor(
                        echo,
                        name='bad_call',
                        value=1,
                        extra=2,
                    )
                    await portal.wait_for_result()

            # normally the bare box; the spec tolerates the same error
            # arriving twice (body re-raise + result collection) as a
            # group of boxes.
            err = excinfo.value
            boxes = (
                list(err.exceptions)
                if isinstance(err, BaseExceptionGroup)
                else [err]
            )
            for box in boxes:
                assert isinstance(box, tractor.RemoteActorError), err
                assert box.boxed_type is TypeError
                assert box.src_uid[0] == 'bad_call'

            assert an is not None
            assert not an._children

    trio.run(main)
