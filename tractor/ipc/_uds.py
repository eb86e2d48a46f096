'''
Unix-domain-socket transport: addresses, the per-user runtime directory the
sockets live in, listeners and peer credentials.
'''
from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
import stat
import struct
import sys
from pathlib import Path
from typing import ClassVar

import msgspec
import trio

from tractor import log

from ._transport import MsgpackTransport

logger = log.get_logger()

HAS_UDS: bool = hasattr(socket, 'AF_UNIX')
_DARWIN_TMPDIR: str = '/tmp'
# sun_path sizes, including the terminating NUL
_MAX_SOCKPATH: int = 108 if sys.platform.startswith('linux') else 104


def _sockpath_size(path: Path) -> int:
    '''
    What `path` takes of `sun_path`: its encoded bytes, which is what
    the kernel counts (a name of multi-byte characters is longer than its
    number of characters).
    '''
    return len(os.fsencode(path))


def _interp_suffix() -> str:
    '''
    `.<id>` in a sub-interpreter: actors there share the process' pid,
    and two of the same name must not share a socket path.
    '''
    try:
        import _interpreters
        iid = int(_interpreters.get_current()[0])
    except Exception:
        return ''
    return f'.{iid}' if iid else ''


def _ensure_private_dir(path: Path, label: str) -> None:
    '''Create `path` with mode 0700, or check that it is ours and private.'''
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(
            f'Unsafe {label} runtime dir {str(path)!r}: it must be a real '
            f'directory owned by uid {os.getuid()}'
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)


def get_rt_dir(
    subdir: str|os.PathLike|None = None,
    appname: str = 'tractor',
) -> Path:
    '''
    The per-user runtime directory for UDS sockets, created private
    (0700) on first use; an existing one must be a directory we own.
    '''
    if subdir is not None:
        sub = Path(subdir)
        if sub.is_absolute() or '..' in sub.parts:
            raise ValueError(f'`subdir` must be relative without `..`: {subdir!r}')
    if os.name != 'posix':
        import platformdirs
        path = Path(platformdirs.user_runtime_dir(appname))
        if subdir is not None:
            path = path / subdir
        path.mkdir(parents=True, exist_ok=True)
        return path

    if sys.platform == 'darwin':
        label = 'Darwin'
        base = Path(_DARWIN_TMPDIR)
        levels = [f'{appname}-{os.getuid()}']
    else:
        label = 'POSIX'
        xdg = os.environ.get('XDG_RUNTIME_DIR')
        if xdg and Path(xdg).is_dir():
            base = Path(xdg)
            levels = [appname]
        else:
            # no per-user runtime dir (e.g. a container): a private /tmp one
            base = Path('/tmp')
            levels = [f'{appname}-{os.getuid()}']
    if subdir is not None:
        levels.extend(Path(subdir).parts)
    path = base
    for level in levels:
        path = path / level
        _ensure_private_dir(path, label)
    return path


class UDSAddress(
    msgspec.Struct,
    frozen=True,
):
    '''A socket file `filename` inside directory `filedir`.'''
    filedir: str
    filename: str
    maybe_pid: int|None = None

    proto_key: ClassVar[str] = 'uds'
    unwrapped_type: ClassVar[type] = tuple
    def_bindspace: ClassVar[Path] = None  # set at import, below

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UDSAddress):
            return self.unwrap() == other.unwrap()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.unwrap())

    @property
    def bindspace(self) -> Path:
        return Path(self.filedir or self.def_bindspace)

    @property
    def sockpath(self) -> Path:
        return self.bindspace / self.filename

    @property
    def is_valid(self) -> bool:
        return self.bindspace in self.sockpath.parents

    @classmethod
    def from_addr(cls, addr: tuple[str, str]|list|str|os.PathLike) -> UDSAddress:
        if isinstance(addr, (str, os.PathLike)):
            path = Path(addr)
            return cls(str(path.parent), path.name)
        filedir, filename = addr
        return cls(str(filedir), str(filename))

    def unwrap(self) -> tuple[str, str]:
        return (str(self.filedir), str(self.filename))

    @classmethod
    def get_random(
        cls,
        bindspace: str|Path|None = None,
        name: str|None = None,
    ) -> UDSAddress:
        '''
        A fresh socket path `<bindspace>/<name>@<pid>.sock`; names that are
        unsafe or too long for `sun_path` are replaced by a digest.
        '''
        bindspace = Path(bindspace or cls.def_bindspace)
        pid = os.getpid()
        if name is None:
            name = f'no_runtime_root.{secrets.token_hex(4)}'
        filename = f'{name}@{pid}{_interp_suffix()}.sock'
        unsafe = (
            '\0' in name
            or '/' in name
            or (os.altsep is not None and os.altsep in name)
            or os.path.isabs(name)
        )
        if unsafe or _sockpath_size(bindspace / filename) >= _MAX_SOCKPATH:
            digest = hashlib.blake2s(name.encode(), digest_size=16).hexdigest()
            filename = f'actor.{digest}@{pid}{_interp_suffix()}.sock'
            if _sockpath_size(bindspace / filename) >= _MAX_SOCKPATH:
                raise ValueError(
                    f'UDS path too long for {bindspace}: even the digest '
                    f'name {filename!r} does not fit'
                )
        return cls(str(bindspace), filename, maybe_pid=pid)

    @classmethod
    def get_root(cls) -> UDSAddress:
        return cls(str(cls.def_bindspace), 'registry@1616.sock')

    def __repr__(self) -> str:
        return f'{type(self).__name__}[{self.unwrap()!r}]'


UDSAddress.def_bindspace = get_rt_dir() if HAS_UDS else None


def _peer_pid(sock: trio.socket.SocketType) -> int|None:
    '''The connected peer's pid, from the kernel.'''
    try:
        if sys.platform.startswith('linux'):
            creds = sock.getsockopt(
                socket.SOL_SOCKET,
                socket.SO_PEERCRED,
                struct.calcsize('3i'),
            )
            pid, _uid, _gid = struct.unpack('3i', creds)
            return pid
        if sys.platform == 'darwin':
            LOCAL_PEERPID = 0x002
            raw = sock.getsockopt(0, LOCAL_PEERPID, struct.calcsize('i'))
            return struct.unpack('i', raw)[0]
    except OSError:
        pass
    return None


_LISTEN_BACKLOG: int = 128
# a tag names the process (`@<pid>`) or sub-interpreter (`@<pid>.<id>`)
# part of a socket file name, see `UDSAddress.get_random()`
_TAG_RE: re.Pattern = re.compile(r'@\d+(\.\d+)?')


def _bind_and_listen(path: Path) -> socket.socket:
    '''
    Bind and listen in one synchronous step: a socket that is bound but
    not yet listening refuses connections just like a stale file, so the
    window in which a concurrent stale-check could mistake us for dead
    must stay as small as possible (no trio checkpoint in between).
    '''
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(_LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _has_listener(path: Path) -> bool:
    '''
    Does something accept connections on socket file `path`? One
    non-blocking connect, which on a unix socket completes or is refused
    at once; nothing is sent, the probe is closed right away.
    '''
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(str(path))
    except (BlockingIOError, InterruptedError):
        # EAGAIN (backlog full) / EINPROGRESS: alive, merely busy
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    finally:
        probe.close()
    return True


def _inode(info: os.stat_result) -> tuple[int, int, int]:
    # inode numbers get reused at once: the ctime tells a new file apart
    return (info.st_dev, info.st_ino, info.st_ctime_ns)


def _remove_if_stale(path: Path) -> bool:
    '''
    Unlink socket file `path` if nobody listens on it any more; `True`
    if we removed it. Raises `ConnectionError` for a live listener or a
    path that is not a socket (never removed).
    '''
    try:
        before = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(before.st_mode):
        raise ConnectionError(
            f'Can not listen on UDS path {str(path)!r}: it exists and is '
            f'not a socket (refusing to remove it)'
        )
    try:
        alive = _has_listener(path)
    except OSError as err:
        # e.g. EACCES: we can not tell, so leave it alone
        raise ConnectionError(
            f'UDS socket {str(path)!r} exists and could not be probed: {err}'
        ) from err
    if alive:
        raise ConnectionError(
            f'UDS address {str(path)!r} is in use by a live listener'
        )
    try:
        after = path.lstat()
        if _inode(after) != _inode(before):
            # replaced while we probed: that one is not ours to judge
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _listen_error(path: Path, err: OSError) -> ConnectionError:
    if err.errno == errno.EADDRINUSE:
        return ConnectionError(
            f'UDS address {str(path)!r} is in use by a live listener'
        )
    return ConnectionError(f'Could not listen on UDS socket {str(path)!r}: {err}')


async def start_listener(addr: UDSAddress) -> tuple[trio.SocketListener, UDSAddress]:
    '''
    Bind and listen on `addr`'s socket path. A socket file left behind by
    a dead owner (connects refused) is replaced, once; a live listener, or
    a path that is not a socket, raises `ConnectionError`.
    '''
    path = addr.sockpath
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sock = _bind_and_listen(path)
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise _listen_error(path, err) from err
        # occupied: raises unless the owner is gone
        if _remove_if_stale(path):
            logger.warning(f'Replaced stale UDS socket file {str(path)!r}')
        try:
            # EADDRINUSE again: someone else bound it meanwhile
            sock = _bind_and_listen(path)
        except OSError as err:
            raise _listen_error(path, err) from err
    await trio.lowlevel.checkpoint()
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock)), addr


def remove_stale_sockets(
    tag: str,
    bindspace: Path|None = None,
) -> list[Path]:
    '''
    Remove the socket files in `bindspace` (default
    `UDSAddress.def_bindspace`) named `*{tag}.sock` whose listener is
    gone (connects refused); return the removed paths.

    `tag` is `'@<pid>'` (a process actor) or `'@<pid>.<interp_id>'` (a
    sub-interpreter actor), e.g. for clean-up after reaping a child.
    Live sockets and non-socket files are left alone. Synchronous and
    non-blocking: one immediate connect attempt per candidate.
    '''
    if not _TAG_RE.fullmatch(tag):
        raise ValueError(
            f'`tag` must look like \'@<pid>\' or \'@<pid>.<interp_id>\', '
            f'got {tag!r}'
        )
    space = Path(bindspace or UDSAddress.def_bindspace)
    suffix = f'{tag}.sock'
    try:
        with os.scandir(space) as scan:
            entries = [entry for entry in scan if entry.name.endswith(suffix)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed: list[Path] = []
    for entry in entries:
        path = Path(entry.path)
        try:
            if _remove_if_stale(path):
                removed.append(path)
        except ConnectionError:
            continue  # live, or not a socket
        except OSError as err:
            logger.warning(f'Could not remove stale UDS socket {str(path)!r}: {err}')
    return removed


open_listener = start_listener


def socket_file_id(addr: UDSAddress) -> tuple[int, int, int]|None:
    '''Which file is at `addr`'s path now (take it right after binding).'''
    try:
        return _inode(addr.sockpath.lstat())
    except FileNotFoundError:
        return None


def unlink_socket(addr: UDSAddress, file_id: tuple[int, int, int]|None = None) -> None:
    '''
    Remove `addr`'s socket file; with `file_id` (from `socket_file_id()`)
    only if it is still that file, not one a successor bound since.
    '''
    path = addr.sockpath
    try:
        if file_id is not None and _inode(path.lstat()) != file_id:
            return
        path.unlink()
    except FileNotFoundError:
        pass


async def connect(addr: UDSAddress) -> trio.SocketStream:
    path = str(addr.sockpath)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if sys.platform.startswith('linux'):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        await sock.connect(path)
    except OSError as err:
        sock.close()
        raise ConnectionError(
            f'Could not connect to UDS socket {path!r}: {err}'
        ) from err
    return trio.SocketStream(sock)


class MsgpackUDSStream(MsgpackTransport):
    '''Length-prefixed msgpack frames over a unix-domain socket.'''

    def _addrs(self) -> tuple[UDSAddress, UDSAddress]:
        sock = self.stream.socket
        # both ends carry the listening socket's path: our own name on an
        # accepted socket, the peer's on a connecting one (whose own name
        # is empty, or abstract when the kernel autobound it)
        names = (os.fsdecode(sock.getsockname()), os.fsdecode(sock.getpeername()))
        path = Path(next((name for name in names if name.startswith('/')), names[0]))
        pid = _peer_pid(sock)
        laddr = UDSAddress(str(path.parent), path.name, maybe_pid=os.getpid())
        raddr = UDSAddress(str(path.parent), path.name, maybe_pid=pid)
        return laddr, raddr
