'''
Peer authentication: every connection starts with a mutual
challenge-response over a secret both actors hold, before anything else
the peer sends is decoded as a protocol message.

The exchange (C: the connecting side, A: the accepting side; both send
their challenge at once, so it costs two round trips in all)::

    C -> A  AuthChallenge(nonce=Nc)      A -> C  AuthChallenge(nonce=Na)
    C -> A  AuthProof(aid=Aid_C, mac=HMAC(K, 'C' | Nc | Na | Aid_C))
            A checks it; only then
    A -> C  AuthProof(aid=Aid_A, mac=HMAC(K, 'A' | Nc | Na | Aid_A))

Fresh 32 byte nonces on both sides make every proof good for one
connection only (no replay); the role byte stops a proof from being
reflected back to its sender on another connection; the secret never
travels. The acceptor proves itself last, so an unauthenticated client
learns nothing about the actor it reached, not even its name.

Where the secret comes from (first match wins): `open_root_actor(secret=)`
(or what a parent handed its child), `$TRACTOR_SECRET`, else a per-user
file `<config dir>/tractor/secret` (mode 0600, created on first use) so
every program of one user finds the others while other users cannot.
'''
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import msgspec
import trio

from tractor._exceptions import (
    AuthenticationFailed,
    HandshakeFailed,
)
from tractor.msg.types import (
    Aid,
    AuthChallenge,
    AuthProof,
)

from ._transport import (
    BadMsg,
    FrameTooLarge,
    MsgpackTransport,
    PeerClosed,
    UndecodableFrame,
)

SECRET_ENV_VAR: str = 'TRACTOR_SECRET'
NONCE_SIZE: int = 32
# a secret longer than this is surely a mistake (and must fit a pipe)
MAX_SECRET_SIZE: int = 4096
_LABEL: bytes = b'tractor-auth-v1\0'

_challenge_dec = msgspec.msgpack.Decoder(AuthChallenge)
_proof_dec = msgspec.msgpack.Decoder(AuthProof)
_aid_dec = msgspec.msgpack.Decoder(Aid)


class Secret:
    '''
    The shared secret, wrapped so it never shows in a repr, a log line or
    a traceback's locals by accident.
    '''
    __slots__ = ('value',)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return '<Secret>'

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (Secret, (self.value,))


def _as_secret(value: str|bytes|Secret, source: str) -> Secret:
    if isinstance(value, Secret):
        return value
    raw = value.encode() if isinstance(value, str) else bytes(value)
    raw = raw.strip()
    if not raw:
        raise ValueError(f'The tractor secret from {source} is empty')
    if len(raw) > MAX_SECRET_SIZE:
        raise ValueError(
            f'The tractor secret from {source} is {len(raw)} bytes; '
            f'at most {MAX_SECRET_SIZE} are allowed'
        )
    return Secret(raw)


def default_secret_path() -> Path:
    '''`<user config dir>/tractor/secret`.'''
    if os.name == 'posix':
        base = os.environ.get('XDG_CONFIG_HOME') or ''
        config = Path(base) if base and Path(base).is_absolute() else (
            Path.home() / '.config'
        )
    else:
        import platformdirs
        config = Path(platformdirs.user_config_dir())
    return config / 'tractor' / 'secret'


def _check_private(path: Path, info: os.stat_result) -> None:
    if os.name != 'posix':
        return
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise PermissionError(
            f'The tractor secret file {str(path)!r} must be owned by uid '
            f'{os.getuid()} and readable by nobody else '
            f'(fix: chmod 600 {path})'
        )


def load_secret_file(path: Path|None = None) -> Secret:
    '''
    Read the per-user secret file, creating it (mode 0600, 32 random
    bytes as hex) if it does not exist yet; several processes racing to
    create it all end up with the same secret.
    '''
    path = path or default_secret_path()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    except FileNotFoundError:
        _create_secret_file(path)
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    with os.fdopen(fd, 'rb') as file:
        _check_private(path, os.fstat(file.fileno()))
        return _as_secret(file.read(MAX_SECRET_SIZE + 1), str(path))


def _create_secret_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.{secrets.token_hex(4)}')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, 'wb') as file:
            file.write(secrets.token_hex(32).encode() + b'\n')
            file.flush()
            os.fsync(file.fileno())
        try:
            # atomic "create if absent": whoever links first wins
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def resolve_secret(explicit: str|bytes|Secret|None = None) -> Secret:
    '''The secret to use: `explicit`, else `$TRACTOR_SECRET`, else the file.'''
    if explicit is not None:
        return _as_secret(explicit, '`secret=`')
    env = os.environ.get(SECRET_ENV_VAR)
    if env:
        return _as_secret(env, f'${SECRET_ENV_VAR}')
    return load_secret_file()


# the secret of the actor running in this process (or sub-interpreter)
_secret: Secret|None = None


def current_secret() -> Secret:
    '''This actor's secret, resolved from the environment on first use.'''
    global _secret
    if _secret is None:
        _secret = resolve_secret()
    return _secret


def set_secret(secret: Secret|None) -> Secret|None:
    '''Install `secret` for this process's actor; returns the previous one.'''
    global _secret
    previous, _secret = _secret, secret
    return previous


def secret_digest(secret: Secret) -> str:
    '''A short, non-reversible tag of a secret, for logs and tests.'''
    return hashlib.blake2s(secret.value, digest_size=4, person=b'tractor').hexdigest()


def _mac(
    secret: Secret,
    role: bytes,
    connector_nonce: bytes,
    acceptor_nonce: bytes,
    aid_bytes: bytes,
) -> bytes:
    return hmac.new(
        secret.value,
        b''.join((_LABEL, role, connector_nonce, acceptor_nonce, aid_bytes)),
        hashlib.sha256,
    ).digest()


async def _recv_as(
    transport: MsgpackTransport,
    dec: msgspec.msgpack.Decoder,
    what: str,
    peer: str,
) -> Any:
    try:
        return await transport.recv_with(dec)
    except PeerClosed as err:
        raise HandshakeFailed(
            f'{peer} closed the connection during the handshake, before '
            f'sending its {what} (does it use another secret?)',
            loglevel='transport' if err.clean else 'warning',
            src_exc=err,
        ) from err
    except (BadMsg, UndecodableFrame, FrameTooLarge) as err:
        raise HandshakeFailed(
            f'{peer} sent an invalid {what} during the handshake: {err}',
            loglevel='warning',
            src_exc=err,
        ) from err
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as err:
        raise HandshakeFailed(
            f'Connection to {peer} broke during the handshake: {err!r}',
            src_exc=err,
        ) from err


async def authenticate(
    transport: MsgpackTransport,
    aid: Aid,
    *,
    accept: bool,
    secret: Secret,
    peer: str,
) -> Aid:
    '''
    Run the mutual challenge-response on a fresh `transport`; returns the
    peer's authenticated `Aid`, or raises `HandshakeFailed` (`peer` only
    names the other end in error messages). Not bounded by itself.
    '''
    my_nonce = secrets.token_bytes(NONCE_SIZE)
    try:
        await transport.send(AuthChallenge(nonce=my_nonce))
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as err:
        raise HandshakeFailed(
            f'Connection to {peer} broke during the handshake: {err!r}',
            src_exc=err,
        ) from err
    challenge = await _recv_as(transport, _challenge_dec, 'challenge', peer)
    peer_nonce = challenge.nonce
    if len(peer_nonce) != NONCE_SIZE or hmac.compare_digest(peer_nonce, my_nonce):
        raise HandshakeFailed(f'{peer} sent a bad challenge nonce', loglevel='warning')

    if accept:
        nonces = (peer_nonce, my_nonce)
        my_role, peer_role = b'A', b'C'
    else:
        nonces = (my_nonce, peer_nonce)
        my_role, peer_role = b'C', b'A'
    aid_bytes = msgspec.msgpack.encode(aid)
    proof = AuthProof(
        aid=msgspec.Raw(aid_bytes),
        mac=_mac(secret, my_role, *nonces, aid_bytes),
    )
    if not accept:
        await _send_proof(transport, proof, peer)

    try:
        peer_proof = await _recv_as(transport, _proof_dec, 'proof', peer)
    except HandshakeFailed as err:
        if not accept and isinstance(err.src_exc, PeerClosed):
            # it read our proof and hung up: it checked it against another key
            raise AuthenticationFailed(
                f'{peer} refused our authentication: it does not hold our '
                'secret (a different `secret=`/$TRACTOR_SECRET, or another '
                "user's actor)",
                loglevel='warning',
                src_exc=err.src_exc,
            ) from err
        raise
    peer_aid_bytes = bytes(peer_proof.aid)
    expected = _mac(secret, peer_role, *nonces, peer_aid_bytes)
    if not hmac.compare_digest(expected, peer_proof.mac):
        raise AuthenticationFailed(
            f'{peer} failed authentication: its proof does not match our '
            'secret (a different `secret=`/$TRACTOR_SECRET, or another user)',
            loglevel='warning',
        )
    try:
        peer_aid = _aid_dec.decode(peer_aid_bytes)
    except (msgspec.DecodeError, RecursionError) as err:
        raise HandshakeFailed(
            f'{peer} authenticated but sent an invalid `Aid`: {err}',
            loglevel='warning',
        ) from err

    if accept:
        await _send_proof(transport, proof, peer)
    return peer_aid


async def _send_proof(transport: MsgpackTransport, proof: AuthProof, peer: str) -> None:
    try:
        await transport.send(proof)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as err:
        raise HandshakeFailed(
            f'Connection to {peer} broke during the handshake: {err!r}',
            src_exc=err,
        ) from err

