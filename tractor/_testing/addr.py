'''
Random transport addresses for tests, so a test run never talks to a
real registrar on the default address nor collides with another run.

'''
from __future__ import annotations

import errno
import fcntl
import os
import random
import socket
import tempfile
from typing import Any

# lock files held open for the life of this process, one per TCP port
# handed out; other processes using this module skip those ports.
_port_locks: dict[int, int] = {}


def _lock_dir() -> str:
    path: str = os.path.join(
        tempfile.gettempdir(),
        f'tractor-test-ports-{os.getuid()}',
    )
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _reserve_port(port: int) -> bool:
    '''
    Claim `port` for this process (among processes using this module)
    and check nothing currently listens on it.

    '''
    if port in _port_locks:
        return False  # already handed out by this process
    fd: int = os.open(
        os.path.join(_lock_dir(), f'{port}.lock'),
        os.O_RDWR | os.O_CREAT,
        0o600,
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(('127.0.0.1', port))
        except OSError:
            os.close(fd)  # in use by someone else
            return False

    _port_locks[port] = fd
    return True


def _rando_tcp_port() -> int:
    for _ in range(1000):
        port: int = 1024 + (random.randint(0, 8999) + os.getpid()) % 9000
        if _reserve_port(port):
            return port
    raise RuntimeError('No free TCP port found for a test address?')


def _as_tuple(addr: Any) -> tuple:
    return tuple(str(part) for part in addr)


def get_rando_addr(tpt_proto: str) -> Any:
    '''
    A fresh random (unwrapped) address for transport `tpt_proto`:

    - `'tcp'`: `('127.0.0.1', <port in 1024..10023>)`, a port not in
      use and not handed out to any other process using this helper,
    - `'uds'`: `UDSAddress.get_random().unwrap()`.

    Never the default registry address.

    '''
    from tractor.discovery._addr import _default_lo_addrs

    default = _default_lo_addrs.get(tpt_proto)
    for _ in range(100):
        match tpt_proto:
            case 'tcp':
                addr: Any = ('127.0.0.1', _rando_tcp_port())
            case 'uds':
                from tractor.ipc._uds import UDSAddress
                addr = UDSAddress.get_random().unwrap()
            case _:
                raise ValueError(
                    f'No random-address support for transport '
                    f'{tpt_proto!r}'
                )
        if (
            default is None
            or _as_tuple(addr) != _as_tuple(default)
        ):
            return addr

    raise RuntimeError(
        f'Could not draw a non-default {tpt_proto!r} address?'
    )
