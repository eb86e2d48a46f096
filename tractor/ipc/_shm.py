'''
Shared memory between actors on one host: fixed-size typed lists
(`open_shm_list()` / `attach_shm_list()`) and, with numpy installed,
arrays that one actor fills and others read (`open_shm_ndarray()` /
`attach_shm_ndarray()` -> `ShmArray`).

Each segment (a POSIX shared memory object, `multiprocessing`'s
`SharedMemory`) starts with a small header naming the process that
created it. The creator unlinks it when it is done (when its actor
exits, or on `unlink()` / leaving a `with` block); a segment left behind
by a creator that died without that (e.g. SIGKILLed) is found stale on
the next open of its key and replaced. Segments are not handed to
`multiprocessing`'s resource tracker, which would unlink them behind
the owner's back when any attached process exits.
'''
from __future__ import annotations

import ast
import os
import struct
import sys
from multiprocessing.shared_memory import SharedMemory
from typing import (
    Any,
    Iterable,
    Iterator,
    TYPE_CHECKING,
)

from tractor import log
from tractor.runtime import _state

if TYPE_CHECKING:
    import numpy as np

logger = log.get_logger()

# magic, creator pid, kind code, item count, first, last (array window)
_HEADER = struct.Struct('<8sqqqqq')
_MAGIC = b'tractshm'
_HEADER_SIZE = 64  # keeps the items 8-byte aligned, with room to grow
assert _HEADER.size <= _HEADER_SIZE

# list item types and their `memoryview.cast()` formats
# an array's shape and dtype, described after the header
_META_SIZE = 192

_LIST_FORMATS: dict[type, str] = {float: 'd', int: 'q', bool: '?'}
_KIND_LIST, _KIND_ARRAY = 1, 2


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_header(shm: SharedMemory) -> tuple[int, int, int, int, int]:
    magic, pid, kind, count, first, last = _HEADER.unpack_from(shm.buf, 0)
    if magic != _MAGIC:
        raise ValueError(f'Shared memory {shm.name!r} is not a tractor segment')
    return pid, kind, count, first, last


def _create(key: str, size: int, kind: int, count: int) -> SharedMemory:
    '''A new segment under `key`, replacing one whose creator is dead.'''
    try:
        shm = SharedMemory(key, create=True, size=_HEADER_SIZE + size, track=False)
    except FileExistsError:
        old = SharedMemory(key, track=False)
        try:
            owner = _read_header(old)[0]
        except ValueError:
            old.close()
            raise FileExistsError(
                f'Shared memory {key!r} exists and is not a tractor segment'
            ) from None
        if _pid_alive(owner):
            old.close()
            raise FileExistsError(
                f'Shared memory {key!r} is in use (created by pid {owner})'
            ) from None
        logger.warning(f'Removing stale shared memory {key!r} of dead pid {owner}')
        old.close()
        old.unlink()
        shm = SharedMemory(key, create=True, size=_HEADER_SIZE + size, track=False)
    _HEADER.pack_into(shm.buf, 0, _MAGIC, os.getpid(), kind, count, 0, 0)
    return shm


def _attach(key: str, kind: int) -> tuple[SharedMemory, int]:
    shm = SharedMemory(key, track=False)
    try:
        _, found_kind, count, _, _ = _read_header(shm)
    except ValueError:
        shm.close()
        raise
    if found_kind != kind:
        shm.close()
        raise TypeError(f'Shared memory {key!r} holds another kind of object')
    return shm, count


def _tie_to_actor(segment: _Segment) -> None:
    # an actor cleans up its segments when it exits
    actor = _state.current_actor(err_on_no_runtime=False)
    if actor is not None:
        actor.lifetime_stack.callback(segment.destroy)


class _Segment:
    '''A header-prefixed shared memory segment, created or attached.'''

    def __init__(self, shm: SharedMemory, owner: bool, readonly: bool) -> None:
        self.shm = shm
        self.key: str = shm.name.lstrip('/')
        self.owner = owner
        self.readonly = readonly
        self._closed = False

    def _check_writable(self) -> None:
        if self.readonly:
            raise PermissionError(f'{type(self).__name__} {self.key!r} is read-only')

    def close(self) -> None:
        '''Detach this process (the segment stays for the others).'''
        if not self._closed:
            self._release_views()
            self.shm.close()
            self._closed = True

    def unlink(self) -> None:
        '''Remove the segment (new attaches fail; attached views stay valid).'''
        try:
            self.shm.unlink()
        except FileNotFoundError:
            pass

    def destroy(self) -> None:
        '''Close, and unlink when we created it.'''
        self.close()
        if self.owner:
            self.unlink()

    def _release_views(self) -> None:
        pass

    def __enter__(self) -> _Segment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.destroy()


class ShmList(_Segment):
    '''
    A fixed-length list of `float`, `int` or `bool` in shared memory;
    indexing and slicing like a list (slices are copies).
    '''

    def __init__(
        self,
        shm: SharedMemory,
        count: int,
        fmt: str,
        owner: bool,
        readonly: bool,
    ) -> None:
        super().__init__(shm, owner, readonly)
        self._items = shm.buf[_HEADER_SIZE:].cast(fmt)[:count]

    def _release_views(self) -> None:
        self._items.release()

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int|slice) -> Any:
        if isinstance(index, slice):
            return self._items[index].tolist()
        return self._items[index]

    def __setitem__(self, index: int|slice, value: Any) -> None:
        self._check_writable()
        if isinstance(index, slice):
            positions = range(*index.indices(len(self._items)))
            values = list(value)
            if len(values) != len(positions):
                raise ValueError(
                    f'A shared list has a fixed length: {len(values)} values '
                    f'for a slice of {len(positions)}'
                )
            for position, item in zip(positions, values):
                self._items[position] = item
        else:
            self._items[index] = value

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items.tolist())

    def __repr__(self) -> str:
        return f'ShmList({self.key!r}, {self._items.tolist()!r})'


def _list_format(dtype: type) -> str:
    try:
        return _LIST_FORMATS[dtype]
    except KeyError:
        raise TypeError(
            f'A shared list holds one of {[t.__name__ for t in _LIST_FORMATS]}, '
            f'not {dtype!r}'
        ) from None


def open_shm_list(
    key: str,
    sequence: Iterable|None = None,
    size: int = 2**10,
    dtype: type = float,
    readonly: bool = False,
) -> ShmList:
    '''
    Create the shared list `key` of `size` items of `dtype` (zeroed, or
    filled from `sequence`, whose length then sets the size). Owned by
    the caller: unlinked when its actor exits, or on `destroy()` / at the
    end of a `with` block.
    '''
    fmt = _list_format(dtype)
    items = list(sequence) if sequence is not None else None
    count = len(items) if items is not None else size
    shm = _create(key, count * struct.calcsize(fmt), _KIND_LIST, count)
    # the item format goes in the (spare) `first` slot, for attachers
    struct.pack_into('<q', shm.buf, 32, ord(fmt))
    shml = ShmList(shm, count, fmt, owner=True, readonly=False)
    if items:
        shml[:] = items
    shml.readonly = readonly
    _tie_to_actor(shml)
    return shml


def attach_shm_list(key: str, readonly: bool = False) -> ShmList:
    '''Attach to the shared list `key` (closed when our actor exits).'''
    shm, count = _attach(key, _KIND_LIST)
    fmt = chr(struct.unpack_from('<q', shm.buf, 32)[0])
    shml = ShmList(shm, count, fmt, owner=False, readonly=readonly)
    _tie_to_actor(shml)
    return shml


# ---- arrays (numpy) ----

def _numpy() -> Any:
    try:
        import numpy
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            '`ShmArray` needs numpy: install it, e.g. `pip install "tractor[shm]"`'
        ) from err
    except ImportError as err:
        if sys.implementation.name == 'cpython' and not _in_main_interpreter():
            raise ImportError(
                '`ShmArray` needs numpy, which can not run in a '
                'sub-interpreter (a `subint` actor): use `open_shm_list()` '
                f'there, or a process actor ({err})'
            ) from err
        raise
    return numpy


def _in_main_interpreter() -> bool:
    try:
        from concurrent import interpreters
    except ImportError:
        return True
    return interpreters.get_current() == interpreters.get_main()


class ShmArray(_Segment):
    '''
    A numpy array in shared memory that one actor fills and others read.
    Rows are appended with `push()`; `array` is the filled part
    (`buffer[first:last]`), whose bounds live in the segment too, so every
    reader sees the writer's progress.
    '''

    def __init__(
        self,
        shm: SharedMemory,
        shape: tuple[int, ...],
        dtype: Any,
        owner: bool,
        readonly: bool,
    ) -> None:
        super().__init__(shm, owner, readonly)
        np = _numpy()
        self._buffer = np.ndarray(
            shape, dtype=dtype, buffer=shm.buf, offset=_HEADER_SIZE + _META_SIZE,
        )
        if readonly:
            self._buffer.flags.writeable = False
        # the header's `first` and `last` fields, viewed as int64s
        self._bounds = np.ndarray((2,), dtype='<i8', buffer=shm.buf, offset=32)

    def _release_views(self) -> None:
        # numpy views must go before the mapping can be closed
        self._buffer = self._bounds = None

    @property
    def first(self) -> int:
        return int(self._bounds[0])

    @property
    def last(self) -> int:
        return int(self._bounds[1])

    @property
    def buffer(self) -> np.ndarray:
        '''The whole underlying array.'''
        return self._buffer

    @property
    def array(self) -> np.ndarray:
        '''The filled rows: a view, no copy.'''
        return self._buffer[self.first:self.last]

    def push(self, rows: Any) -> int:
        '''Append `rows` after the last filled one; returns the new `last`.'''
        self._check_writable()
        rows = _numpy().asarray(rows, dtype=self._buffer.dtype)
        if rows.ndim == self._buffer.ndim - 1:
            rows = rows[None]
        end = self.last + len(rows)
        if end > len(self._buffer):
            raise ValueError(
                f'ShmArray {self.key!r} is full: {self.last} + {len(rows)} rows '
                f'> {len(self._buffer)}'
            )
        self._buffer[self.last:end] = rows
        self._bounds[1] = end
        return end

    def __repr__(self) -> str:
        return (
            f'ShmArray({self.key!r}, shape={self._buffer.shape}, '
            f'dtype={self._buffer.dtype}, first={self.first}, last={self.last})'
        )


def _dtype_header(np: Any, shape: tuple[int, ...], dtype: Any) -> bytes:
    # what attachers need to rebuild the array, after the header
    return repr((tuple(shape), np.dtype(dtype).str)).encode()


def open_shm_ndarray(
    key: str,
    shape: tuple[int, ...] = (2**10,),
    dtype: Any = 'float64',
    readonly: bool = False,
) -> ShmArray:
    '''
    Create the shared array `key` (zeroed, empty: `first == last == 0`).
    Owned by the caller like `open_shm_list()`.
    '''
    np = _numpy()
    dtype = np.dtype(dtype)
    meta = _dtype_header(np, shape, dtype)
    if len(meta) > _META_SIZE:
        raise ValueError(f'Shape/dtype description too long: {meta!r}')
    nbytes = int(np.prod(shape)) * dtype.itemsize
    shm = _create(key, _META_SIZE + nbytes, _KIND_ARRAY, 0)
    shm.buf[_HEADER_SIZE:_HEADER_SIZE + len(meta)] = meta
    return _array_of(shm, owner=True, readonly=readonly)


def attach_shm_ndarray(key: str, readonly: bool = True) -> ShmArray:
    '''Attach to the shared array `key` (closed when our actor exits).'''
    shm, _ = _attach(key, _KIND_ARRAY)
    return _array_of(shm, owner=False, readonly=readonly)


def _array_of(shm: SharedMemory, owner: bool, readonly: bool) -> ShmArray:
    meta = bytes(shm.buf[_HEADER_SIZE:_HEADER_SIZE + _META_SIZE]).rstrip(b'\0')
    shape, dtype = ast.literal_eval(meta.decode())
    arr = ShmArray(shm, shape, dtype, owner, readonly)
    _tie_to_actor(arr)
    return arr
