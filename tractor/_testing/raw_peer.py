'''
A peer that speaks the wire protocol by hand (length-prefixed msgpack
over a plain socket), for tests that play a hostile or broken client.

It builds every frame itself, including the authentication exchange, so
the tests that use it also pin the wire format: it shares no code with
the runtime's transport or handshake.
'''
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
import uuid as _uuid
from typing import Any

import msgspec
import trio

_AUTH_LABEL: bytes = b'tractor-auth-v1\0'
_HEADER = struct.Struct('<I')


class _Proof(msgspec.Struct, tag_field='msg_type', tag='AuthProof'):
    # keeps the `Aid` as the exact bytes the actor MACed
    aid: msgspec.Raw
    mac: bytes


def frame(body: bytes) -> bytes:
    '''`body` behind its little-endian u32 length prefix.'''
    return _HEADER.pack(len(body)) + body


def encode(obj: Any) -> bytes:
    return msgspec.msgpack.encode(obj)


def aid_dict(name: str, uuid: str|None = None) -> dict:
    '''An `Aid` message as the wire carries it (fields in order).'''
    return {
        'msg_type': 'Aid',
        'name': name,
        'uuid': uuid or str(_uuid.uuid4()),
        'pid': os.getpid(),
        'is_registrar': False,
        'is_probe': False,
    }


def auth_mac(
    secret: bytes,
    role: bytes,
    connector_nonce: bytes,
    acceptor_nonce: bytes,
    aid_bytes: bytes,
) -> bytes:
    return hmac.new(
        secret,
        _AUTH_LABEL + role + connector_nonce + acceptor_nonce + aid_bytes,
        hashlib.sha256,
    ).digest()


class RawPeer:
    '''One raw connection to an actor's listener.'''

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buf = bytearray()

    @classmethod
    async def connect(cls, addr: tuple|list) -> RawPeer:
        '''`addr` is a TCP `(host, port)` or a UDS `(dir, filename)`.'''
        first, second = addr
        if isinstance(second, int):
            stream = await trio.open_tcp_stream(first, second)
        else:
            stream = await trio.open_unix_socket(os.path.join(first, second))
        return cls(stream)

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_msg(self, obj: Any) -> None:
        await self.stream.send_all(frame(encode(obj)))

    async def recv_frame(self) -> bytes|None:
        '''The next frame's body, or None once the actor closed on us.'''
        while True:
            if len(self._buf) >= 4:
                (size,) = _HEADER.unpack_from(self._buf)
                if len(self._buf) >= 4 + size:
                    body = bytes(self._buf[4:4 + size])
                    del self._buf[:4 + size]
                    return body
            try:
                chunk = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not chunk:
                return None
            self._buf += chunk

    async def recv_msg(self) -> Any:
        '''The next message decoded to plain objects, or None on close.'''
        body = await self.recv_frame()
        return None if body is None else msgspec.msgpack.decode(body)

    async def wait_closed(self) -> list:
        '''Read until the actor closes the connection; returns what came.'''
        got = []
        while (msg := await self.recv_msg()) is not None:
            got.append(msg)
        return got

    async def authenticate(
        self,
        secret: bytes,
        name: str = 'raw_peer',
        uuid: str|None = None,
    ) -> dict|None:
        '''
        Run the connecting side of the handshake with `secret` and claim
        the identity `(name, uuid)`. Returns the actor's `Aid` as a dict,
        or None if it closed the connection (our proof was refused).
        '''
        my_nonce = secrets.token_bytes(32)
        await self.send_msg({'msg_type': 'AuthChallenge', 'nonce': my_nonce})
        challenge = await self.recv_msg()
        if challenge is None:
            return None
        assert challenge['msg_type'] == 'AuthChallenge', challenge
        their_nonce = challenge['nonce']
        aid_bytes = encode(aid_dict(name, uuid))
        await self.send_msg({
            'msg_type': 'AuthProof',
            'aid': msgspec.Raw(aid_bytes),
            'mac': auth_mac(secret, b'C', my_nonce, their_nonce, aid_bytes),
        })
        body = await self.recv_frame()
        if body is None:
            return None
        proof = msgspec.msgpack.decode(body, type=_Proof)
        expected = auth_mac(secret, b'A', my_nonce, their_nonce, bytes(proof.aid))
        # the actor proves it holds the secret too
        assert hmac.compare_digest(expected, proof.mac)
        return msgspec.msgpack.decode(proof.aid)

    async def aclose(self) -> None:
        await self.stream.aclose()
