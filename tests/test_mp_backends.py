'''
The `multiprocessing` backends (`mp_spawn`, `mp_forkserver`) and backend
selection: start-method keys, the user's `__main__` script in children,
one shared forkserver for a nested tree (stopped when its process exits),
the forkserver's authentication as tractor speaks it from trio, its
warmed spares, and no leaked file descriptors across spawns.

Most tests here pick their backend explicitly, whatever the session's
`--spawn-backend` is, and restore the session's choice afterwards.

'''
import multiprocessing as mp
import multiprocessing.connection as mp_conn
import os
import socket
import subprocess
import sys
import textwrap
import threading
import typing

import psutil
import pytest
import trio
import tractor
from tractor.spawn import _spawn

MP_BACKENDS: list[str] = ['mp_spawn', 'mp_forkserver']


@pytest.fixture
def restore_spawn_method():
    '''Opening a root with `start_method=` changes the process default.'''
    before = _spawn._spawn_method
    yield
    _spawn.try_set_start_method(before)


# ---- functions run inside child actors ----

async def get_pid() -> int:
    return os.getpid()


async def spawn_grandchild() -> tuple[int, int]:
    '''(our pid, our grandchild's pid)'''
    async with tractor.open_nursery() as an:
        portal = await an.run_in_actor(get_pid)
        return os.getpid(), await portal.wait_for_result()


# ---- start method selection ----

def test_unknown_spawn_method_lists_valid_keys(restore_spawn_method):
    before = _spawn._spawn_method
    with pytest.raises(ValueError) as excinfo:
        _spawn.try_set_start_method('fork')
    for key in typing.get_args(_spawn.SpawnMethodKey):
        assert repr(key) in str(excinfo.value)
    assert _spawn._spawn_method == before


@pytest.mark.parametrize(
    'key, mp_method',
    [('trio', None), ('mp_spawn', 'spawn'), ('mp_forkserver', 'forkserver')],
)
def test_try_set_start_method_returns_context(
    restore_spawn_method,
    key,
    mp_method,
):
    ctx = _spawn.try_set_start_method(key)
    assert _spawn._spawn_method == key
    if mp_method is None:
        assert ctx is None
    else:
        assert ctx is mp.get_context(mp_method)
        assert ctx.get_start_method() == mp_method


# ---- the user's `__main__` ----

MAIN_SCRIPT = '''
import os
import sys

import psutil
import trio
import tractor

# the re-import in children must not re-run the guarded block below
IMPORTED_AS = __name__


async def whoami() -> tuple[str, str]:
    return tractor.current_actor().name, IMPORTED_AS


async def nested() -> tuple[str, str, int]:
    async with tractor.open_nursery() as an:
        portal = await an.run_in_actor(whoami, name='grandchild')
        name, imported_as = await portal.wait_for_result()
        return name, imported_as, psutil.Process().ppid()


async def main(method: str, port: int) -> None:
    async with tractor.open_nursery(
        start_method=method,
        registry_addrs=[('127.0.0.1', port)],
    ) as an:
        daemon = await an.start_actor('daemon', enable_modules=[__name__])
        print('daemon:', tuple(await daemon.run(whoami)))
        portal = await an.run_in_actor(nested)
        name, imported_as, ppid = await portal.wait_for_result()
        print('grandchild:', (name, imported_as))
        # a forkserver child's parent is the forkserver
        print('CHILD_PPID', ppid)
        await daemon.cancel_actor()


if __name__ == '__main__':
    print('MAIN BLOCK RAN', flush=True)
    trio.run(main, sys.argv[1], int(sys.argv[2]))
'''


@pytest.mark.parametrize('backend', ['trio', *MP_BACKENDS])
def test_main_script_functions_in_children(backend, tmp_path):
    '''
    Functions of the user's `__main__` script run in a child (through
    `enable_modules=[__name__]`) and in a grandchild (`run_in_actor`);
    children see the script as `__mp_main__` and never run its
    `if __name__ == '__main__':` block. With `mp_forkserver` the
    forkserver is gone once the script exits.

    '''
    script = tmp_path / 'user_script.py'
    script.write_text(textwrap.dedent(MAIN_SCRIPT))
    from tractor._testing.addr import get_rando_addr
    _, port = get_rando_addr('tcp')
    proc = subprocess.run(
        [sys.executable, str(script), backend, str(port)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHON_COLORS='0'),
    )
    report = f'rc={proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}'
    assert proc.returncode == 0, report
    assert "daemon: ('daemon', '__mp_main__')" in proc.stdout, report
    assert "grandchild: ('grandchild', '__mp_main__')" in proc.stdout, report
    assert proc.stdout.count('MAIN BLOCK RAN') == 1, report

    if backend == 'mp_forkserver':
        ppid = int(proc.stdout.split('CHILD_PPID')[1].split()[0])
        # the script started it and stopped it at exit; a stray one
        # would have been re-parented and still be around
        try:
            fs = psutil.Process(ppid)
            cmdline = ' '.join(fs.cmdline())
        except psutil.NoSuchProcess:
            cmdline = ''
        assert 'multiprocessing.forkserver' not in cmdline, (
            f'forkserver {ppid} outlived its process: {cmdline}'
        )


# ---- the forkserver ----

def test_nested_actors_share_one_forkserver(reg_addr, restore_spawn_method):
    '''
    A grandchild is forked by the same forkserver as its parent: the
    tree never starts a second server.

    '''
    async def main() -> tuple[int, int]:
        with trio.fail_after(30):
            async with tractor.open_nursery(
                registry_addrs=[reg_addr],
                start_method='mp_forkserver',
            ) as an:
                portal = await an.run_in_actor(spawn_grandchild)
                return await portal.wait_for_result()

    child, grandchild = trio.run(main)
    from tractor.spawn import _forkserver
    server_pid = _forkserver._mp_forkserver._forkserver._forkserver_pid
    assert server_pid is not None
    # both exited by now; what the server told us about them is that it
    # reaped both, so check the tree structure while it is still alive
    assert not psutil.pid_exists(child)
    assert not psutil.pid_exists(grandchild)
    fs = psutil.Process(server_pid)
    assert 'multiprocessing.forkserver' in ' '.join(fs.cmdline())
    # its preload ran trio once (`_forkserver_warm`): forking stays safe
    # only if that left no thread behind
    assert fs.num_threads() == 1
    assert fs.ppid() == os.getpid()
    # no other forkserver was started anywhere below us
    servers = [
        proc for proc in psutil.Process().children(recursive=True)
        if 'multiprocessing.forkserver' in ' '.join(proc.cmdline())
    ]
    assert [proc.pid for proc in servers] == [server_pid]


# ---- forkserver spares ----

async def whoami_where() -> tuple[int, str, str, str]:
    '''(our pid, actor name, multiprocessing's name for us, our cwd)'''
    return (
        os.getpid(),
        tractor.current_actor().name,
        mp.current_process().name,
        os.getcwd(),
    )


async def _spare_pid() -> int:
    '''Wait until our run has a spare ready (the pool refills after a pause).'''
    from tractor.spawn import _forkserver_spares
    pool = _forkserver_spares._spare_pool.get()
    while not pool.ready:
        await trio.sleep(0.05)
    return pool.ready[-1].handle.pid


@pytest.mark.parametrize('spares', [1, 0], ids=['spares', 'no-spares'])
def test_forkserver_spare_becomes_the_next_actor(
    reg_addr,
    restore_spawn_method,
    monkeypatch,
    tmp_path,
    spares,
):
    '''
    After a spawn, the forkserver forks a spare that warms up and waits:
    the next spawn is that process, under the new actor's names and in
    the spawner's current directory of then. A spawn that must not
    inherit our `__main__` never takes a spare made for one that does.
    Unclaimed spares end with the run. `SPARES = 0` turns them off.

    '''
    from tractor.spawn import _forkserver, _forkserver_spares
    if not _forkserver._ASYNC_REQUESTS:
        pytest.skip('spares come with asking the 3.14 forkserver from trio')
    monkeypatch.setattr(_forkserver_spares, 'SPARES', spares)
    monkeypatch.chdir(tmp_path)

    async def main() -> int:
        with trio.fail_after(30):
            async with tractor.open_nursery(
                registry_addrs=[reg_addr],
                start_method='mp_forkserver',
            ) as an:
                first = await an.run_in_actor(get_pid, name='first')
                await first.wait_for_result()
                server = _forkserver._mp_forkserver._forkserver._forkserver_pid
                if not spares:
                    with pytest.raises(LookupError):
                        _forkserver_spares._spare_pool.get()
                    return server

                spare = await _spare_pid()
                os.chdir(tmp_path / '..')
                second = await an.run_in_actor(whoami_where, name='second')
                pid, name, mp_name, cwd = await second.wait_for_result()
                assert pid == spare
                assert name == 'second'
                assert mp_name.startswith('second@')
                assert cwd == os.getcwd()

                spare = await _spare_pid()
                third = await an.run_in_actor(
                    get_pid, name='third', inherit_parent_main=False,
                )
                assert await third.wait_for_result() != spare
        return server

    server = trio.run(main)
    # the spare left over went with the run
    assert psutil.Process(server).children() == []


# ---- the forkserver's authentication ----

def _stdlib_server(sock: socket.socket, authkey: bytes, out: list) -> None:
    '''The forkserver's side of the exchange, as multiprocessing runs it.'''
    conn = mp_conn.Connection(sock.detach())
    try:
        mp_conn.deliver_challenge(conn, authkey)
        mp_conn.answer_challenge(conn, authkey)
        out.append('authenticated')
    except (mp.AuthenticationError, EOFError, OSError) as err:
        out.append(err)
    finally:
        conn.close()


def _keyless_server(sock: socket.socket, out: list) -> None:
    '''A server that lets anyone in and cannot answer a challenge.'''
    conn = mp_conn.Connection(sock.detach())
    try:
        conn.send_bytes(mp_conn._CHALLENGE + b'{sha256}' + os.urandom(40))
        conn.recv_bytes(256)
        conn.send_bytes(mp_conn._WELCOME)
        conn.recv_bytes(256)
        conn.send_bytes(b'{sha256}' + bytes(32))
        out.append(conn.recv_bytes(256))
    except (EOFError, OSError) as err:
        out.append(err)
    finally:
        conn.close()


@pytest.mark.parametrize(
    'server_key, client_key, keyless, ok',
    [
        (b'k' * 32, b'k' * 32, False, True),
        (b'k' * 32, b'x' * 32, False, False),
        (None, b'k' * 32, True, False),
    ],
    ids=['same-key', 'wrong-key', 'server-without-key'],
)
def test_forkserver_authentication(server_key, client_key, keyless, ok):
    '''
    tractor asks the 3.14 forkserver for children from trio, speaking
    multiprocessing's challenge itself: it must pass the stdlib's server
    side with the key, and fail (before anything else is sent) against a
    wrong key or a server that does not hold the key.

    '''
    from tractor.spawn import _forkserver
    theirs, ours = socket.socketpair(socket.AF_UNIX)
    out: list = []
    if keyless:
        server = threading.Thread(target=_keyless_server, args=(theirs, out))
    else:
        server = threading.Thread(target=_stdlib_server, args=(theirs, server_key, out))
    server.start()

    async def client() -> None:
        with trio.fail_after(10):
            with trio.socket.from_stdlib_socket(ours) as sock:
                await _forkserver._authenticate(sock, client_key)

    try:
        if ok:
            trio.run(client)
        else:
            with pytest.raises(mp.AuthenticationError):
                trio.run(client)
    finally:
        ours.close()
        server.join(10)
    if ok:
        assert out == ['authenticated']
    elif keyless:
        # told the impostor it failed, and sent it nothing more
        assert out == [mp_conn._FAILURE]
    else:
        assert isinstance(out[0], (mp.AuthenticationError, EOFError, OSError))


# ---- resources ----

def test_no_fd_leak_across_spawns(reg_addr, start_method):
    '''
    Spawning and reaping children leaves no file descriptor behind in
    the parent (pipes, sentinels, sockets).

    '''
    def open_fds() -> int:
        return len(os.listdir('/proc/self/fd'))

    async def spawn_some(count: int) -> None:
        with trio.fail_after(60):
            async with tractor.open_nursery(
                registry_addrs=[reg_addr],
                start_method=start_method,
            ) as an:
                for _ in range(count):
                    portal = await an.run_in_actor(get_pid)
                    await portal.wait_for_result()

    # the first round may start long-lived helpers (forkserver, resource
    # tracker) holding fds for the rest of the process' life
    trio.run(spawn_some, 1)
    before = open_fds()
    trio.run(spawn_some, 5)
    assert open_fds() <= before
