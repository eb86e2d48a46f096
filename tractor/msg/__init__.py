'''
The message layer: protocol message types and the msgpack codec.
'''
from .types import (
    PayloadMsg as PayloadMsg,
    Msg as Msg,
    Aid as Aid,
    SpawnSpec as SpawnSpec,
    Start as Start,
    StartAck as StartAck,
    Started as Started,
    Yield as Yield,
    Stop as Stop,
    Return as Return,
    CancelAck as CancelAck,
    Error as Error,
    MsgType as MsgType,
    PayloadT as PayloadT,
    __msg_types__ as __msg_types__,
    __msg_spec__ as __msg_spec__,
)
from ._codec import (
    MsgCodec as MsgCodec,
    MsgDec as MsgDec,
    mk_codec as mk_codec,
    mk_dec as mk_dec,
    apply_codec as apply_codec,
    current_codec as current_codec,
    _ctxvar_MsgCodec as _ctxvar_MsgCodec,
)
from .ptr import NamespacePath as NamespacePath
