'''
The msgpack codec: one encoder for every message, and a decoder whose
type is the union of all protocol messages with payloads left as
`msgspec.Raw` (each dialog decodes its own payloads later, against its own
spec).

The codec for a task is looked up through a `ContextVar`, so
`apply_codec()` can swap it for one task without touching the others.
'''
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import (
    Any,
    Callable,
    Iterator,
    Union,
)

import msgspec
from msgspec import Raw

from .types import mk_msg_spec


def _spec_str(spec: Any) -> str:
    return getattr(spec, '__name__', None) or repr(spec)


class MsgDec:
    '''A payload decoder for one payload spec.'''

    def __init__(
        self,
        dec: msgspec.msgpack.Decoder,
        spec: Any,
        hook: Callable|None = None,
    ) -> None:
        self.dec = dec
        self.spec = self.pld_spec = spec
        self.hook = hook

    @property
    def spec_str(self) -> str:
        return _spec_str(self.spec)

    def decode(self, raw: bytes|Raw) -> Any:
        return self.dec.decode(raw)

    def __repr__(self) -> str:
        return f'MsgDec(spec={self.spec_str})'


def mk_dec(
    spec: Any = Any,
    dec_hook: Callable|None = None,
    ext_types: list[type]|None = None,
) -> MsgDec:
    '''
    Build a payload decoder. A `dec_hook` needs `ext_types`, and the decode
    type then becomes `Raw | Union[ext_types]` so the hook sees them.
    '''
    if spec is None:
        if not ext_types:
            raise TypeError('`mk_dec(spec=None)` needs `ext_types`')
        spec = Union[tuple(ext_types)]
    if dec_hook is not None:
        if not ext_types:
            raise TypeError('A `dec_hook` needs the `ext_types` it decodes')
        spec = Union[(Raw, *ext_types)]
    return MsgDec(
        msgspec.msgpack.Decoder(spec, dec_hook=dec_hook),
        spec,
        hook=dec_hook,
    )


class MsgCodec:
    '''Encoder plus message-union decoder for one IPC payload spec.'''

    def __init__(
        self,
        ipc_pld_spec: Any = Raw,
        enc_hook: Callable|None = None,
        dec_hook: Callable|None = None,
        libname: str = 'msgspec',
    ) -> None:
        self.lib = msgspec
        self.libname = libname
        self.pld_spec = ipc_pld_spec
        self.msg_spec, self._msg_types = mk_msg_spec(ipc_pld_spec)
        self.enc = msgspec.msgpack.Encoder(enc_hook=enc_hook)
        self.dec = msgspec.msgpack.Decoder(self.msg_spec, dec_hook=dec_hook)
        self.enc_hook = enc_hook

    @property
    def pld_spec_str(self) -> str:
        return _spec_str(self.pld_spec)

    @property
    def msg_spec_str(self) -> str:
        return '|'.join(msgtype.__name__ for msgtype in self._msg_types)

    def encode(self, obj: Any) -> bytes:
        return self.enc.encode(obj)

    def encode_into(self, obj: Any, buf: bytearray, offset: int) -> None:
        self.enc.encode_into(obj, buf, offset)

    def decode(self, data: bytes|memoryview) -> Any:
        return self.dec.decode(data)

    def __repr__(self) -> str:
        return f'MsgCodec(pld_spec={self.pld_spec_str})'


def mk_codec(
    ipc_pld_spec: Any = Raw,
    libname: str = 'msgspec',
    enc_hook: Callable|None = None,
    ext_types: list[type]|None = None,
    ext_dec: Callable|None = None,
) -> MsgCodec:
    '''Build a codec; an `enc_hook` must say which `ext_types` it handles.'''
    if enc_hook is not None and not ext_types:
        raise TypeError('An `enc_hook` needs the `ext_types` it encodes')
    return MsgCodec(
        ipc_pld_spec=ipc_pld_spec,
        enc_hook=enc_hook,
        dec_hook=ext_dec,
        libname=libname,
    )


# the transport's default: envelopes decoded, payloads left raw
_def_tractor_codec: MsgCodec = mk_codec(Raw)
# everything decoded in one pass, payloads as plain builtins
_def_msgspec_codec: MsgCodec = mk_codec(Any)

_ctxvar_MsgCodec: ContextVar[MsgCodec] = ContextVar(
    'msgspec_codec',
    default=_def_tractor_codec,
)


def current_codec() -> MsgCodec:
    '''The codec used by the current task.'''
    return _ctxvar_MsgCodec.get()


@contextmanager
def apply_codec(
    codec: MsgCodec,
    ctx: Any = None,
) -> Iterator[MsgCodec]:
    '''Use `codec` for the current task until the block exits.'''
    token = _ctxvar_MsgCodec.set(codec)
    try:
        yield codec
    finally:
        _ctxvar_MsgCodec.reset(token)


def unpack_spec_types(spec: Any) -> set[type]:
    '''The member types of a (possibly union) spec.'''
    members = getattr(spec, '__args__', None)
    return set(members) if members else {spec}
