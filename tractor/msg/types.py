'''
The IPC protocol's message set.

Every message is a tagged `msgspec.Struct`: on the wire a msgpack map whose
first key is `msg_type` (the class name) followed by every field in
declaration order. Payload-carrying messages are generic in their `.pld` so
the transport can decode the envelope with `pld: msgspec.Raw` and leave the
payload to the receiving dialog, which knows what type to expect.

This module is the bottom of the stack: it imports nothing from tractor.
'''
from __future__ import annotations

from typing import (
    Any,
    Generic,
    Literal,
    TypeVar,
    Union,
)

import msgspec
from msgspec import Struct

PayloadT = TypeVar('PayloadT')


class _Msg(
    Struct,
    tag=True,
    tag_field='msg_type',
):
    '''Base of all protocol messages.'''


class Aid(
    _Msg,
    frozen=True,
):
    '''
    An actor's identity, exchanged as the first message on every
    connection. Equality and hashing go by `uuid` only.
    '''
    name: str
    uuid: str
    pid: int|None = None
    is_registrar: bool|None = None
    is_probe: bool = False

    @property
    def uid(self) -> tuple[str, str]:
        return (self.name, self.uuid)

    def reprol(self, sin_uuid: bool = True) -> str:
        if sin_uuid:
            return f'{self.name}@{self.pid}'
        return f'{self.name}[{self.uuid[:6]}]@{self.pid}'

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Aid):
            return self.uuid == other.uuid
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.uuid)


class AuthChallenge(_Msg):
    '''
    First message each way on every connection: a fresh random nonce the
    peer must fold into its proof (see `tractor.ipc._auth`).
    '''
    nonce: bytes


class AuthProof(_Msg):
    '''
    Second message each way: the sender's `Aid` (as its encoded bytes, so
    both sides MAC the very same bytes) and an HMAC over both nonces, the
    sender's role and that `Aid`, keyed by the shared secret.
    '''
    aid: msgspec.Raw
    mac: bytes


class SpawnSpec(_Msg):
    '''Parent -> child, right after the child connected back.'''
    _parent_main_data: dict
    _runtime_vars: dict[str, Any]
    enable_modules: dict[str, str]
    reg_addrs: list[tuple[str, str|int]]
    bind_addrs: list[tuple[str, str|int]]|None


class Start(_Msg):
    '''Caller -> callee: schedule `ns:func(**kwargs)` as a remote task.'''
    cid: str
    ns: str
    func: str
    kwargs: dict[str, Any]
    uid: tuple[str, str]
    pld_spec: str = 'typing.Any'


class StartAck(_Msg):
    '''Callee -> caller: the task was accepted, here is its kind.'''
    cid: str
    functype: Literal['asyncfunc', 'asyncgen', 'context']


class PayloadMsg(_Msg, Generic[PayloadT]):
    '''Generic base of every message carrying a user payload.'''
    cid: str
    pld: PayloadT


Msg = PayloadMsg


class Started(PayloadMsg[PayloadT], Generic[PayloadT]):
    '''Child -> parent: the value passed to `Context.started()`.'''


class Yield(PayloadMsg[PayloadT], Generic[PayloadT]):
    '''One stream item, either direction.'''


class Stop(_Msg):
    '''Graceful end of a stream.'''
    cid: str


class Return(PayloadMsg[PayloadT], Generic[PayloadT]):
    '''Callee -> caller: the final return value.'''


class CancelAck(_Msg):
    '''Callee -> caller: the result of a runtime cancel endpoint.'''
    cid: str
    pld: bool


class Error(_Msg):
    '''
    A boxed exception. With a `cid` it ends that dialog; without one it
    reports a runtime-level failure of the sender.
    '''
    src_uid: tuple[str, str]
    src_type_str: str
    boxed_type_str: str
    relay_path: list[tuple[str, str]]
    message: str|None = None
    tb_str: str = ''
    canceller: tuple[str, str]|None = None
    sender: tuple[str, str]|None = None
    cid: str|None = None
    _bad_msg: dict|None = None
    _bad_msg_as_dict: dict|None = None


_runtime_msgs: list[type] = [
    Aid,
    SpawnSpec,
    Start,
    StartAck,
    Stop,
    CancelAck,
    Error,
]
_payload_msgs: list[type] = [
    Started,
    Yield,
    Return,
]
__msg_types__: list[type] = _runtime_msgs + _payload_msgs
_msg_table: dict[str, type] = {
    msgtype.__name__: msgtype for msgtype in __msg_types__
}


def mk_msg_spec(
    pld_union: Any = Any,
) -> tuple[Any, list[type]]:
    '''
    The union of all message types with the payload messages
    parameterized by `pld_union`, and that union's members as a list.
    '''
    members: list[type] = list(_runtime_msgs) + [
        msgtype[pld_union] for msgtype in _payload_msgs
    ]
    return Union[tuple(members)], members


MsgType, __msg_spec__ = mk_msg_spec(Any)


def from_dict_msg(
    dict_msg: dict,
) -> _Msg:
    '''Rebuild a message from its dict form (as msgpack decodes it).'''
    fields = dict(dict_msg)
    name = fields.pop('msg_type')
    return msgspec.convert(
        {'msg_type': name, **fields},
        _msg_table[name],
    )
