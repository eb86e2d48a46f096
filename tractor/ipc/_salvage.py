'''
Reading the `msg_type` and `cid` of a message the decoder gave up on
(e.g. nested too deeply), so the receiver can still answer the dialog it
names. A loop over msgpack heads, never a recursion.
'''
from __future__ import annotations

# how a msgpack value is laid out, by its first byte (see the msgpack
# spec): fixed-size values (bytes after the first one), strs/bins/exts
# (width of the length field, plus 1 for an ext's type byte) and
# arrays/maps (width of the count field, values per count)
_FIXED_SIZE: dict[int, int] = {
    0xc0: 0, 0xc2: 0, 0xc3: 0,
    0xca: 4, 0xcb: 8,
    0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8,
    0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8,
    0xd4: 2, 0xd5: 3, 0xd6: 5, 0xd7: 9, 0xd8: 17,
}
_SIZED: dict[int, tuple[int, int]] = {
    0xc4: (1, 0), 0xc5: (2, 0), 0xc6: (4, 0),
    0xc7: (1, 1), 0xc8: (2, 1), 0xc9: (4, 1),
    0xd9: (1, 0), 0xda: (2, 0), 0xdb: (4, 0),
}
_COUNTED: dict[int, tuple[int, int]] = {
    0xdc: (2, 1), 0xdd: (4, 1), 0xde: (2, 2), 0xdf: (4, 2),
}
_STR_HEADS = frozenset(range(0xa0, 0xc0)) | {0xd9, 0xda, 0xdb}
_MAP_HEADS = frozenset(range(0x80, 0x90)) | {0xde, 0xdf}
# `salvage_envelope()` gives up after walking this many values (bounds its cost)
_SALVAGE_MAX_VALUES = 1 << 20


def _read_head(data: memoryview, pos: int) -> tuple[int, int, int]:
    '''
    The head of the msgpack value at `pos`: where it ends, how many bytes
    of the value follow it, and how many values the value contains.
    '''
    byte = data[pos]
    pos += 1
    if byte <= 0x7f or byte >= 0xe0:
        return pos, 0, 0
    if byte <= 0x8f:
        return pos, 0, 2 * (byte & 0x0f)
    if byte <= 0x9f:
        return pos, 0, byte & 0x0f
    if byte <= 0xbf:
        return pos, byte & 0x1f, 0
    if byte in _FIXED_SIZE:
        return pos, _FIXED_SIZE[byte], 0
    if byte in _SIZED:
        width, extra = _SIZED[byte]
        size = int.from_bytes(data[pos:pos + width], 'big')
        return pos + width, extra + size, 0
    if byte in _COUNTED:
        width, per = _COUNTED[byte]
        count = int.from_bytes(data[pos:pos + width], 'big')
        return pos + width, 0, per * count
    raise ValueError(f'{byte:#x} starts no msgpack value')


def _skip(data: memoryview, pos: int, budget: int) -> tuple[int, int]:
    '''
    Where the msgpack value at `pos` ends, and what is left of `budget`
    (values walked) after it: a loop, not a recursion, so any depth goes.
    '''
    pending = 1
    while pending:
        budget -= 1
        if budget < 0:
            raise ValueError('too many values to walk')
        pos, size, count = _read_head(data, pos)
        pos += size
        pending += count - 1
    if pos > len(data):
        raise ValueError('truncated')
    return pos, budget


def _str_or_skip(
    data: memoryview,
    pos: int,
    budget: int,
) -> tuple[str|None, int, int]:
    '''The str at `pos` (None for any other value), then as `_skip()`.'''
    if data[pos] not in _STR_HEADS:
        return None, *_skip(data, pos, budget)
    start, size, _ = _read_head(data, pos)
    end, budget = _skip(data, pos, budget)
    try:
        return str(data[start:end], 'utf-8'), end, budget
    except UnicodeDecodeError:
        return None, end, budget


def salvage_envelope(frame: memoryview) -> dict|None:
    '''
    The `msg_type` and `cid` (when strs) of a message that did not
    decode, read without decoding anything else: the decoders recurse,
    and skip values recursively too, so they fail on deep nesting however
    little they want from it. None if the frame is no msgpack map.
    '''
    salvaged: dict[str, str|None] = {'msg_type': None, 'cid': None}
    try:
        if frame[0] not in _MAP_HEADS:
            return None
        pos, _, count = _read_head(frame, 0)
        budget = _SALVAGE_MAX_VALUES
        unseen = set(salvaged)
        for _ in range(count // 2):
            key, pos, budget = _str_or_skip(frame, pos, budget)
            if key in unseen:
                unseen.discard(key)
                salvaged[key], pos, budget = _str_or_skip(frame, pos, budget)
                if not unseen:
                    break
            else:
                pos, budget = _skip(frame, pos, budget)
    except (IndexError, ValueError):
        return None
    return salvaged
