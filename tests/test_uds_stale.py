'''
Stale unix-domain socket files: a socket file whose owner died (no
`unlink()` ran, e.g. after SIGKILL) must not block the next bind at that
path, while a path with a live listener, or one that is not a socket at
all, must still be refused with a clear error.

'''
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import trio

import tractor
from tractor.ipc import _uds
from tractor.ipc._uds import (
    UDSAddress,
    remove_stale_sockets,
)

pytestmark = pytest.mark.skipif(
    not _uds.HAS_UDS,
    reason='no unix-domain sockets on this platform',
)

# above Linux's largest possible pid (2**22): never a live process
FAKE_PID: int = 2**22 + 17


# ---- functions run inside child actors ----

async def echo(value):
    return value


# ---- helpers ----

@pytest.fixture
def sockdir():
    '''
    A short private dir for socket files (pytest's `tmp_path` can
    exceed the ~104 byte `sun_path` limit).
    '''
    path = Path(tempfile.mkdtemp(prefix='tractor-uds-'))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def skip_unless_uds(tpt_proto: str) -> None:
    if tpt_proto != 'uds':
        pytest.skip(
            'stale socket files are a UDS-only concern; run with '
            '--tpt-proto uds'
        )


def make_stale(path: Path) -> Path:
    '''A socket file nobody listens on: bound, then closed, not unlinked.'''
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)
    sock.close()
    assert path.is_socket()
    return path


def make_live(path: Path) -> socket.socket:
    '''A plain listening socket at `path`; the caller closes it.'''
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    return sock


async def wait_for_line(path: Path, line: str, proc: trio.Process) -> None:
    '''Poll `path` until `line` shows up; fail if `proc` exits first.'''
    while line not in path.read_text():
        assert proc.returncode is None, (
            f'process exited (rc={proc.returncode}) before {line!r}'
        )
        await trio.sleep(0.05)


# ---- `start_listener()` ----

def test_stale_socket_replaced_at_bind(sockdir):
    '''
    A stale socket file at the listen path is replaced and the new
    listener accepts connections. No actors spawned: independent of
    `start_method` and `tpt_proto`.
    '''
    path = make_stale(sockdir / 'actor@1.sock')

    async def main():
        with trio.fail_after(10):
            listener, bound = await _uds.start_listener(
                UDSAddress(str(sockdir), path.name)
            )
            async with listener:
                assert bound.sockpath == path
                assert path.is_socket()
                client = await trio.open_unix_socket(str(path))
                async with client:
                    server = await listener.accept()
                    async with server:
                        await client.send_all(b'ping')
                        assert await server.receive_some(4) == b'ping'

    trio.run(main)


def test_live_listener_is_not_replaced(sockdir):
    '''
    A path another process listens on is refused with a clear error and
    left alone. Independent of `start_method` and `tpt_proto`.
    '''
    path = sockdir / 'taken@1.sock'
    live = make_live(path)
    ino = path.lstat().st_ino

    async def main():
        with trio.fail_after(10):
            with pytest.raises(ConnectionError, match='in use by a live listener'):
                await _uds.start_listener(UDSAddress(str(sockdir), path.name))

    try:
        trio.run(main)
        assert path.lstat().st_ino == ino
        # still reachable
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))
    finally:
        live.close()


@pytest.mark.parametrize('kind', ['file', 'dir', 'symlink'])
def test_non_socket_path_is_never_removed(sockdir, kind):
    '''
    A regular file, directory or symlink at the listen path makes the
    bind fail clearly and is not touched. Independent of `start_method`
    and `tpt_proto`.
    '''
    path = sockdir / 'notasock@1.sock'
    if kind == 'file':
        path.write_text('precious')
    elif kind == 'dir':
        path.mkdir()
    else:
        # even a link to a stale socket: only real socket files go
        path.symlink_to(make_stale(sockdir / 'target@2.sock'))

    async def main():
        with trio.fail_after(10):
            with pytest.raises(ConnectionError, match='not a socket'):
                await _uds.start_listener(UDSAddress(str(sockdir), path.name))

    trio.run(main)
    if kind == 'file':
        assert path.read_text() == 'precious'
    elif kind == 'dir':
        assert path.is_dir()
    else:
        assert path.is_symlink()


# ---- actors binding over stale files ----

def test_actor_and_registry_replace_stale_sockets(
    sockdir,
    start_method,
    tpt_proto,
):
    '''
    Stale socket files at both the registry's and a child actor's
    listen path are replaced: the tree starts and serves RPC.
    '''
    skip_unless_uds(tpt_proto)
    reg_path = make_stale(sockdir / 'registry.sock')
    child_path = make_stale(sockdir / f'child@{FAKE_PID}.sock')

    async def main():
        with trio.fail_after(30):
            async with tractor.open_nursery(
                registry_addrs=[(str(sockdir), reg_path.name)],
                start_method=start_method,
            ) as an:
                portal = await an.start_actor(
                    'child',
                    enable_modules=[__name__],
                    bind_addrs=[(str(sockdir), child_path.name)],
                )
                assert await portal.run(echo, value='hi') == 'hi'
                # both paths are served by live listeners now
                for path in (reg_path, child_path):
                    with socket.socket(socket.AF_UNIX) as probe:
                        probe.connect(str(path))
                await portal.cancel_actor()

    trio.run(main)


def test_root_bind_on_live_path_errors_clearly(sockdir, tpt_proto):
    '''
    A root actor asked to listen where a live listener already is fails
    with the clear `ConnectionError` (no actors spawned: independent of
    `start_method`).
    '''
    skip_unless_uds(tpt_proto)
    live = make_live(sockdir / 'busy.sock')

    async def main():
        with trio.fail_after(20):
            async with tractor.open_root_actor(
                registry_addrs=[(str(sockdir), 'registry.sock')],
                tpt_bind_addrs=[(str(sockdir), 'busy.sock')],
                enable_transports=['uds'],
            ):
                pass

    try:
        with pytest.raises(ConnectionError, match='in use by a live listener'):
            trio.run(main)
    finally:
        live.close()


KILLED_ROOT_SCRIPT: str = textwrap.dedent('''
    import sys
    import trio
    import tractor
    from tractor.ipc._uds import UDSAddress

    async def main(sockdir: str) -> None:
        own = UDSAddress.get_random(bindspace=sockdir, name='doomed')
        async with tractor.open_root_actor(
            registry_addrs=[(sockdir, 'registry.sock')],
            tpt_bind_addrs=[own.unwrap()],
            enable_transports=['uds'],
        ):
            print('UP', flush=True)
            await trio.sleep_forever()

    trio.run(main, sys.argv[1])
''')


def test_registry_socket_of_sigkilled_root(
    sockdir,
    tmp_path,
    start_method,
    tpt_proto,
):
    '''
    A root registrar SIGKILLed in a subprocess leaves its socket files
    behind; `remove_stale_sockets()` clears the ones tagged with its
    pid, and the next root binds the same registry path anyway (the
    stale file is replaced) and runs a tree.
    '''
    skip_unless_uds(tpt_proto)
    reg_path = sockdir / 'registry.sock'
    out = tmp_path / 'out.txt'
    err = tmp_path / 'err.txt'

    async def main():
        with out.open('w') as out_f, err.open('w') as err_f:
            proc = await trio.lowlevel.open_process(
                [sys.executable, '-c', KILLED_ROOT_SCRIPT, str(sockdir)],
                stdout=out_f,
                stderr=err_f,
            )
        try:
            with trio.fail_after(30):
                await wait_for_line(out, 'UP', proc)
            proc.send_signal(signal.SIGKILL)
            with trio.fail_after(10):
                await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                with trio.CancelScope(shield=True):
                    await proc.wait()

        own_path = sockdir / f'doomed@{proc.pid}.sock'
        assert reg_path.is_socket() and own_path.is_socket(), (
            sorted(os.listdir(sockdir)),
            err.read_text()[-3000:],
        )

        # only the dead root's own (pid tagged) file matches its tag
        assert remove_stale_sockets(f'@{proc.pid}', sockdir) == [own_path]
        assert not own_path.exists()
        assert reg_path.is_socket()

        with trio.fail_after(30):
            async with tractor.open_nursery(
                registry_addrs=[(str(sockdir), reg_path.name)],
                start_method=start_method,
            ) as an:
                assert tractor.current_actor().is_registrar
                portal = await an.start_actor('after', enable_modules=[__name__])
                assert await portal.run(echo, value=7) == 7
                await portal.cancel_actor()

        # a clean exit removes the registry socket
        assert not reg_path.exists()

    trio.run(main)


# ---- `remove_stale_sockets()` ----

def test_remove_stale_sockets_only_removes_stale_ones_for_tag(sockdir):
    '''
    Only stale socket files whose name ends in `<tag>.sock` go; live
    ones, other tags (other pids, sub-interpreters of the same pid) and
    non-sockets stay. Independent of `start_method` and `tpt_proto`.
    '''
    pid = FAKE_PID
    stale = make_stale(sockdir / f'a@{pid}.sock')
    stale_digest = make_stale(sockdir / f'actor.0123abcd@{pid}.sock')
    live_path = sockdir / f'b@{pid}.sock'
    live = make_live(live_path)
    subint = make_stale(sockdir / f'c@{pid}.3.sock')
    other_pid = make_stale(sockdir / f'd@1{pid}.sock')
    not_a_sock = sockdir / f'e@{pid}.sock'
    not_a_sock.write_text('keep me')
    other_suffix = make_stale(sockdir / f'f@{pid}.sock.old')
    try:
        removed = remove_stale_sockets(f'@{pid}', sockdir)
        assert sorted(removed) == sorted([stale, stale_digest])
        assert not stale.exists() and not stale_digest.exists()
        for kept in (live_path, subint, other_pid, other_suffix):
            assert kept.is_socket(), kept
        assert not_a_sock.read_text() == 'keep me'

        # nothing left for that tag; the sub-interpreter's tag is separate
        assert remove_stale_sockets(f'@{pid}', sockdir) == []
        assert remove_stale_sockets(f'@{pid}.3', sockdir) == [subint]
        assert live_path.is_socket()
    finally:
        live.close()


def test_remove_stale_sockets_defaults_and_bad_input(sockdir):
    '''
    Defaults to `UDSAddress.def_bindspace`; a missing dir yields
    nothing; a tag that is not `@<pid>[.<interp>]` is refused (an empty
    one would match every socket). Independent of `start_method` and
    `tpt_proto`.
    '''
    path = UDSAddress.def_bindspace / f'test_remove_stale@{FAKE_PID}.7.sock'
    make_stale(path)
    try:
        assert remove_stale_sockets(f'@{FAKE_PID}.7') == [path]
    finally:
        path.unlink(missing_ok=True)

    assert remove_stale_sockets('@1', sockdir / 'missing') == []
    for bad in ('', '.sock', '1234', '@', '@12a', '@1/../x', '@1.2.3'):
        with pytest.raises(ValueError):
            remove_stale_sockets(bad, sockdir)
