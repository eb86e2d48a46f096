'''
Exception types, and boxing of errors into (and out of) `Error` messages.

A failure in one actor travels to another as an `Error` message and is
re-raised there as a `RemoteActorError` (the "box") that carries the remote
type name, the remote traceback text, the uid of the actor it started in and
the path of actors that relayed it.

Sits at the message layer: depends only on `tractor.msg.types`.
'''
from __future__ import annotations

import builtins
import importlib
import sys
import traceback
from typing import Any

import msgspec
import trio

from tractor.msg.types import (
    Error,
    _msg_table,
    from_dict_msg,
)


class RuntimeFailure(RuntimeError):
    '''Bad usage of the actor runtime, e.g. opening a second root.'''


class ActorFailure(RuntimeFailure):
    '''An actor failed to boot, or died without reporting why.'''


class ActorTooSlowError(RuntimeFailure):
    '''
    A peer did not acknowledge a cancel request in time. Deliberately not a
    `trio.TooSlowError`, so a `fail_after()` around the caller never
    mistakes it for its own deadline.
    '''


class NoRuntime(RuntimeError):
    '''No actor runtime is running in this process.'''


class NoResult(RuntimeError):
    '''Sentinel: this portal has no main task whose result could be had.'''


class InternalError(RuntimeError):
    '''An impossible state of the runtime: a bug in tractor.'''


class MessagingError(Exception):
    '''An unexpected message arrived in a dialog.'''


class StreamReopenError(trio.ClosedResourceError, RuntimeError):
    '''
    A second stream was opened on a context whose one stream was already
    opened: a stream is one-shot, a new one needs a new context. A
    `trio.ClosedResourceError` (what code written for upstream catches
    around a re-open: the dialog's feed is done) and a `RuntimeError`.
    '''


class DebugRequestError(RuntimeError):
    '''The tree-wide tty lock could not be obtained from the root.'''


class ModuleNotExposed(ModuleNotFoundError):
    '''An RPC named a module that the receiving actor did not enable.'''


# -- crossing the trio/asyncio boundary (`tractor.to_asyncio`); defined
# here so a boxed one resolves in any actor, infected or not

class AsyncioCancelled(Exception):
    '''
    Raised on the trio side: its paired asyncio task was cancelled by
    something other than its trio side (by itself or by asyncio).
    '''


class AsyncioTaskExited(Exception):
    '''
    Raised on the trio side: its paired asyncio task returned while the
    trio side still expected it to talk (`open_channel_from(...,
    suppress_graceful_exits=False)`, or returning before `started_nowait()`).
    '''


class TrioCancelled(Exception):
    '''
    Raised inside an asyncio task: its trio side errored or was cancelled
    (that error, if any, is the `__cause__`).
    '''


class TrioTaskExited(Exception):
    '''
    Raised inside an asyncio task: its trio side left the
    `open_channel_from()` block while the task was still running.
    '''


class AsyncioRuntimeTranslationError(RuntimeError):
    '''
    An outcome could not cross the loop boundary as it should: the asyncio
    host loop stopped under a running trio guest, or an asyncio task
    refused to end after its trio side did.
    '''


class TransportClosed(Exception):
    '''
    The IPC connection to a peer closed or broke. `src_exc` is the
    underlying trio/OS error (also the `__cause__`).
    '''
    def __init__(
        self,
        message: str,
        loglevel: str = 'transport',
        src_exc: BaseException|None = None,
        raise_on_report: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.loglevel = loglevel
        self.src_exc = src_exc
        self._raise_on_report = raise_on_report
        if src_exc is not None:
            self.__cause__ = src_exc

    @classmethod
    def from_src_exc(
        cls,
        src_exc: BaseException,
        message: str,
        body: str = '',
        **kwargs,
    ) -> TransportClosed:
        if body:
            message = f'{message}\n{body}'
        return cls(message, src_exc=src_exc, **kwargs)

    def repr_src_exc(self) -> str:
        if self.src_exc is None:
            return '<unknown>'
        return f'{type(self.src_exc).__name__}: {self.src_exc}'

    def report_n_maybe_raise(self, message: str|None = None) -> None:
        if self._raise_on_report:
            raise self


class HandshakeFailed(TransportClosed):
    '''
    A new connection did not complete the authenticated handshake: the
    peer does not hold our secret, spoke something else, or did not
    answer in time. Nothing it sent was acted on.
    '''


class AuthenticationFailed(HandshakeFailed):
    '''
    The peer answered the handshake but does not hold our secret: its proof
    did not match, or it hung up on ours.
    '''


class RemoteActorError(Exception):
    '''
    An error raised in another actor, boxed and re-raised here.

    `boxed_type` is the type boxed at the last hop (`RemoteActorError`
    itself for an error relayed through intermediate actors); `src_type`
    is the type originally raised where it started.
    '''
    reprol_fields: tuple[str, ...] = ('src_uid', 'relay_uid')

    def __init__(
        self,
        message: str,
        ipc_msg: Error|None = None,
        boxed_type: type[BaseException]|None = None,
        **extra_msgdata,
    ) -> None:
        super().__init__(message)
        self._message = message
        self._ipc_msg = ipc_msg
        self._boxed_type = boxed_type
        self._extra = extra_msgdata

    # -- metadata, read from the message when there is one --
    @property
    def message(self) -> str:
        return self._message

    @property
    def msgdata(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self._extra)
        if self._ipc_msg is not None:
            for name in self._ipc_msg.__struct_fields__:
                data[name] = getattr(self._ipc_msg, name)
        return data

    def _field(self, name: str, default: Any = None) -> Any:
        if self._ipc_msg is not None:
            return getattr(self._ipc_msg, name, default)
        return self._extra.get(name, default)

    @property
    def ipc_msg(self) -> Error|None:
        return self._ipc_msg

    @property
    def boxed_type(self) -> type[BaseException]|None:
        if self._boxed_type is not None:
            return self._boxed_type
        name = self._field('boxed_type_str')
        return get_err_type(name) if name else None

    @property
    def boxed_type_str(self) -> str:
        if self._boxed_type is not None:
            return self._boxed_type.__name__
        return self._field('boxed_type_str') or '<unknown>'

    @property
    def src_type_str(self) -> str:
        return self._field('src_type_str') or self.boxed_type_str

    @property
    def src_type(self) -> type[BaseException]|None:
        if self._ipc_msg is None and self._boxed_type is not None:
            return self._boxed_type
        return get_err_type(self.src_type_str)

    @property
    def src_uid(self) -> tuple[str, str]|None:
        uid = self._field('src_uid')
        return tuple(uid) if uid else None

    @property
    def relay_path(self) -> list[tuple[str, str]]:
        return [tuple(uid) for uid in (self._field('relay_path') or [])]

    @property
    def relay_uid(self) -> tuple[str, str]|None:
        path = self.relay_path
        return path[-1] if path else None

    @property
    def tb_str(self) -> str:
        return self._field('tb_str') or ''

    @property
    def sender(self) -> tuple[str, str]|None:
        uid = self._field('sender')
        return tuple(uid) if uid else None

    def is_inception(self) -> bool:
        return self.boxed_type is not self.src_type

    def unwrap(self) -> BaseException:
        src_type = self.src_type
        if src_type is not None:
            try:
                return src_type(self.tb_str)
            except Exception:
                pass
        return RuntimeError(f'{self.src_type_str}: {self.tb_str}')

    # -- rendering --
    def reprol(self) -> str:
        fields = ' '.join(
            f'{name}={getattr(self, name)!r}' for name in self.reprol_fields
        )
        return f'{type(self).__name__}[{self.boxed_type_str}]({fields})'

    def pformat(self, with_type_header: bool = True) -> str:
        lines: list[str] = []
        if with_type_header:
            lines.append(f'<{type(self).__name__}(')
        lines.append(f' |_src_uid: {self.src_uid!r}')
        lines.append(f' |_relay_uid: {self.relay_uid!r}')
        lines.append(f' |_boxed_type: {self.boxed_type_str}')
        canceller = self._field('canceller')
        if canceller:
            lines.append(f' |_canceller: {tuple(canceller)!r}')
        body = self.tb_str.rstrip('\n')
        if body:
            lines.append(' +------ remote traceback ------')
            lines.extend(f' | {line}' for line in body.splitlines())
            lines.append(' +------------------------------')
        if self._message:
            lines.append(f' {self._message.strip()}')
        if with_type_header:
            lines.append(')>')
        return '\n'.join(lines)

    def __repr__(self) -> str:
        return self.pformat(with_type_header=True)

    def __str__(self) -> str:
        return self.pformat(with_type_header=False)


class ContextCancelled(RemoteActorError):
    '''A remote task was cancelled at somebody's request.'''
    reprol_fields = ('canceller', 'src_uid')

    @property
    def canceller(self) -> tuple[str, str]|None:
        uid = self._field('canceller')
        return tuple(uid) if uid else None


class MsgTypeError(RemoteActorError):
    '''A message, or a message's payload, violated the expected type.'''
    reprol_fields = ('expected_msg_type', 'cid')

    @property
    def bad_msg_as_dict(self) -> dict|None:
        return self._field('_bad_msg_as_dict')

    @property
    def bad_msg(self) -> Any:
        as_dict = self.bad_msg_as_dict
        if as_dict is None:
            return None
        try:
            return from_dict_msg(as_dict)
        except Exception:
            return None

    @property
    def expected_msg_type(self) -> type|None:
        as_dict = self.bad_msg_as_dict or {}
        return _msg_table.get(as_dict.get('msg_type', ''))

    @property
    def cid(self) -> str|None:
        return self._field('cid') or (self.bad_msg_as_dict or {}).get('cid')

    @classmethod
    def from_decode(
        cls,
        message: str,
        bad_msg: Any = None,
        bad_msg_as_dict: dict|None = None,
        **extra,
    ) -> MsgTypeError:
        if bad_msg_as_dict is None and bad_msg is not None:
            bad_msg_as_dict = msgspec.to_builtins(bad_msg)
        return cls(
            message,
            boxed_type=cls,
            _bad_msg_as_dict=bad_msg_as_dict,
            **extra,
        )


class StreamOverrun(RemoteActorError, trio.TooSlowError):
    '''A receiver's buffer overflowed because its sender was too fast.'''


# -- type lookup by name --

def get_err_type(type_name: str) -> type[BaseException]|None:
    '''
    Resolve an exception type by name: builtins, then this module (which
    holds the types registered by `reg_err_types()`), then trio, then bdb.
    '''
    for namespace in (builtins, sys.modules[__name__], trio, 'bdb'):
        if isinstance(namespace, str):
            # the debugger's module: loaded only when a name needs it
            namespace = importlib.import_module(namespace)
        found = getattr(namespace, type_name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
    return None


def reg_err_types(exc_types: list[type[BaseException]]) -> None:
    '''Make application error types resolvable when they arrive boxed.'''
    module = sys.modules[__name__]
    for exc_type in exc_types:
        setattr(module, exc_type.__name__, exc_type)


# -- boxing --

def pack_error(
    exc: BaseException,
    cid: str|None = None,
    src_uid: tuple[str, str]|None = None,
    tb: Any = None,
    tb_str: str = '',
    message: str = '',
    own_uid: tuple[str, str]|None = None,
) -> Error:
    '''
    Box `exc` into an `Error` message. A `RemoteActorError` passing
    through keeps its source metadata, so the receiver can tell where an
    error started however many actors relayed it.
    '''
    if not tb_str:
        tb_str = ''.join(traceback.format_exception(exc))
    if not message:
        message = getattr(exc, 'message', None) or str(exc)

    fields: dict[str, Any] = {}
    relay_path: list[tuple[str, str]] = []
    if isinstance(exc, RemoteActorError):
        fields = {
            key: value for key, value in exc.msgdata.items()
            if key in Error.__struct_fields__
        }
        relay_path = list(exc.relay_path)

    if type(exc) is RemoteActorError:
        # a relay: keep the source, box as a RemoteActorError
        src_uid = exc.src_uid or src_uid or own_uid
        src_type_str = exc.src_type_str
        boxed_type_str = 'RemoteActorError'
    else:
        src_uid = src_uid or own_uid
        src_type_str = boxed_type_str = type(exc).__name__

    if own_uid is not None:
        relay_path.append(own_uid)

    fields.update(
        src_uid=src_uid or ('<unknown>', '<unknown>'),
        src_type_str=src_type_str,
        boxed_type_str=boxed_type_str,
        relay_path=relay_path,
        tb_str=tb_str,
        message=message,
        cid=cid,
    )
    canceller = getattr(exc, 'canceller', None)
    if canceller is not None:
        fields['canceller'] = canceller
    return Error(**fields)


def unpack_error(
    msg: Any,
    chan: Any = None,
    box_type: type[RemoteActorError] = RemoteActorError,
    hide_tb: bool = True,
) -> RemoteActorError|None:
    '''Turn an `Error` message back into a raisable box (`None` otherwise).'''
    if not isinstance(msg, Error):
        return None
    boxed_type_str = msg.boxed_type_str
    if boxed_type_str == 'ContextCancelled':
        box_type = ContextCancelled
    elif boxed_type_str == 'MsgTypeError':
        box_type = MsgTypeError
    elif boxed_type_str == 'StreamOverrun' and msg.sender is None:
        box_type = StreamOverrun
    return box_type(
        f'remote task raised a {boxed_type_str!r}\n',
        ipc_msg=msg,
    )


def _mk_send_mte(
    msg: Any,
    codec: Any,
    src_type_error: BaseException|None = None,
) -> MsgTypeError:
    '''The error raised when trying to send something that is no message.'''
    valid = ', '.join(msgtype.__name__ for msgtype in _msg_table.values())
    mte = MsgTypeError(
        f'invalid msg -> {msg!r}\n'
        f'Valid IPC msgs are: {valid}\n'
        + (f'\n{src_type_error}' if src_type_error else ''),
        boxed_type=MsgTypeError,
    )
    if src_type_error is not None:
        mte.__cause__ = src_type_error
    return mte
