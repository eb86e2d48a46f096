'''
Shared memory between actors (`tractor.ipc._shm`): typed lists and
numpy arrays that one actor creates and others attach to, removed when
their creator exits, and replaced on the next open after a creator was
SIGKILLed; on every backend (subint actors included).
'''
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest
import trio

import tractor
from tractor._testing import nursery_kwargs
from tractor.ipc._shm import (
    ShmArray,
    attach_shm_list,
    attach_shm_ndarray,
    open_shm_list,
    open_shm_ndarray,
)


def shm_exists(key: str) -> bool:
    return os.path.exists(f'/dev/shm/{key}')


@pytest.fixture
def key() -> str:
    key = f'tractor-test-{uuid.uuid4().hex[:12]}'
    yield key
    if shm_exists(key):
        os.unlink(f'/dev/shm/{key}')


def test_shm_list_basics(key):
    with open_shm_list(key, size=4, dtype=int) as shml:
        shml[0] = 5
        shml[1:3] = [7, 8]
        other = attach_shm_list(key)
        assert list(other) == [5, 7, 8, 0] and len(other) == 4
        other[3] = 9
        assert shml[3] == 9 and shml[-2:] == [8, 9]
        with pytest.raises(ValueError, match='fixed length'):
            shml[0:2] = [1]
        with pytest.raises(FileExistsError, match='in use'):
            open_shm_list(key)
        reader = attach_shm_list(key, readonly=True)
        with pytest.raises(PermissionError):
            reader[0] = 1
        reader.close()
        other.close()
    # the creator leaving the block removes it
    assert not shm_exists(key)

    with open_shm_list(key, sequence=[True, False], dtype=bool) as flags:
        assert list(attach_shm_list(key)) == [True, False]
    with pytest.raises(TypeError, match='holds one of'):
        open_shm_list(key, dtype=str)


def test_stale_segment_of_killed_creator_is_replaced(key):
    code = textwrap.dedent(f'''
        import os, signal
        from tractor.ipc._shm import open_shm_list
        shml = open_shm_list({key!r}, sequence=[1.5, 2.5])
        os.kill(os.getpid(), signal.SIGKILL)
    ''')
    proc = subprocess.run([sys.executable, '-c', code], timeout=30)
    assert proc.returncode == -9
    assert shm_exists(key)  # left behind
    assert list(attach_shm_list(key)) == [1.5, 2.5]
    with open_shm_list(key, size=3) as fresh:
        assert list(fresh) == [0.0, 0.0, 0.0]
    assert not shm_exists(key)


def test_shm_array_basics(key):
    with open_shm_ndarray(key, shape=(8, 2), dtype='int32') as arr:
        assert isinstance(arr, ShmArray) and arr.array.shape == (0, 2)
        assert arr.push([[1, 2], [3, 4]]) == 2
        reader = attach_shm_ndarray(key)
        assert reader.array.tolist() == [[1, 2], [3, 4]]
        arr.push([5, 6])
        assert reader.last == 3 and reader.array[-1].tolist() == [5, 6]
        with pytest.raises(PermissionError):
            reader.push([7, 8])
        with pytest.raises(ValueError, match='full'):
            arr.push([[0, 0]] * 6)
        reader.close()
    assert not shm_exists(key)


# ---- between actors ----

async def fill_list(key: str, values: list[float]) -> None:
    '''Create (and so own) a shared list in this actor.'''
    shml = open_shm_list(key, size=len(values))
    shml[:] = values


async def sum_array(key: str) -> list:
    '''Read a shared array that our parent fills.'''
    arr = attach_shm_ndarray(key)
    return [arr.last, float(arr.array.sum())]


def test_shm_between_actors(reg_addr, start_method, key):
    akey = key + '-arr'

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(**nursery_kwargs(reg_addr, start_method)) as an:
                portal = await an.start_actor('sharer', enable_modules=[__name__])

                # the child creates and fills, we read
                await portal.run(fill_list, key=key, values=[0.5, 1.5, 2.5])
                shml = attach_shm_list(key, readonly=True)
                assert list(shml) == [0.5, 1.5, 2.5]

                # we fill, the child reads
                with open_shm_ndarray(akey, shape=(16,)) as arr:
                    arr.push([1.0, 2.0, 3.0])
                    if start_method == 'subint':
                        # numpy can not run in a sub-interpreter: said clearly
                        with pytest.raises(
                            tractor.RemoteActorError, match='sub-interpreter',
                        ) as info:
                            await portal.run(sum_array, key=akey)
                        assert info.value.boxed_type is ImportError
                    else:
                        assert await portal.run(sum_array, key=akey) == [3, 6.0]
                        arr.push([4.0])
                        assert await portal.run(sum_array, key=akey) == [4, 10.0]

                # the creating actor's exit removes its segment
                await portal.cancel_actor()
                shml.close()
            assert not shm_exists(key) and not shm_exists(akey)

    trio.run(main)
