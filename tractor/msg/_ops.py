'''
Per-dialog payload decoding.

The transport decodes only message envelopes (`.pld` stays `msgspec.Raw`);
each `Context` owns a `PldRx` that decodes its payloads against the
dialog's payload spec, turning a mismatch into a `MsgTypeError`.
'''
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import (
    Any,
    Iterator,
)

import msgspec

from tractor._exceptions import MsgTypeError

from ._codec import (
    MsgDec,
    _ctxvar_MsgCodec,
    mk_dec,
)
from .types import (
    PayloadMsg,
    Started,
)

_any_dec: MsgDec = mk_dec(Any)


def _spec_repr(spec: Any) -> str:
    if isinstance(spec, type):
        return spec.__name__
    return repr(spec).replace('typing.', '').replace(' | ', '|')


def mk_pld_mte(
    msg_type: type,
    value: Any,
    spec: Any,
    err: Exception,
    cid: str|None = None,
    sending: bool = False,
    bad_msg_as_dict: dict|None = None,
) -> MsgTypeError:
    '''The error for a payload that does not fit the dialog's spec.'''
    prefix = 'Trying to send ' if sending else ''
    return MsgTypeError(
        f'{prefix}invalid `{msg_type.__name__}` msg payload\n'
        f'value: `{value!r}` has type {type(value)!r}\n'
        f'which does not match type-spec '
        f'`{msg_type.__name__}.pld: {_spec_repr(spec)}`\n'
        f'({err})',
        boxed_type=MsgTypeError,
        cid=cid,
        _bad_msg_as_dict=bad_msg_as_dict,
    )


class PldRx:
    '''Decodes one dialog's payloads against its payload spec.'''

    def __init__(self, dec: MsgDec = _any_dec) -> None:
        self._pld_dec = dec

    @property
    def pld_dec(self) -> MsgDec:
        return self._pld_dec

    def decode_pld(self, msg: PayloadMsg) -> Any:
        pld = msg.pld
        if not isinstance(pld, msgspec.Raw):
            return pld
        try:
            return self._pld_dec.decode(pld)
        except msgspec.ValidationError as err:
            value = msgspec.msgpack.decode(pld)
            raise mk_pld_mte(
                type(msg),
                value,
                self._pld_dec.spec,
                err,
                cid=msg.cid,
                bad_msg_as_dict={
                    'msg_type': type(msg).__name__,
                    'cid': msg.cid,
                    'pld': value,
                },
            ) from None

    def validate_started(self, value: Any) -> Any:
        '''Round-trip `value` through the spec before sending it.'''
        if self._pld_dec is _any_dec:
            return value
        try:
            # with the task's codec: an `apply_codec()`ed `enc_hook` may be
            # what makes `value` encodable at all
            encoded = _ctxvar_MsgCodec.get().encode(value)
            return self._pld_dec.decode(encoded)
        except msgspec.ValidationError as err:
            raise mk_pld_mte(
                Started, value, self._pld_dec.spec, err, sending=True,
            ) from None


# the IPC context bound to the current task; defined down here so payload
# limiting works without the runtime layer (which re-exports it)
_ctxvar_Context: ContextVar[Any] = ContextVar('ipc_context', default=None)


@contextmanager
def limit_plds(spec: Any, **dec_kwargs) -> Iterator[MsgDec]:
    '''Within an open context, decode its payloads against `spec`.'''
    ctx = _ctxvar_Context.get()
    if ctx is None:
        raise RuntimeError('`limit_plds()` needs an open IPC context')
    rx: PldRx = ctx._pld_rx
    prior = rx._pld_dec
    rx._pld_dec = dec = mk_dec(spec, **dec_kwargs)
    try:
        yield dec
    finally:
        rx._pld_dec = prior
