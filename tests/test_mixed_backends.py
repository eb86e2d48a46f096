'''
Per-nursery spawn backends: `open_nursery(start_method=...)` spawns with
that backend wherever the nursery is opened, a nursery without it uses
its actor's default (the root's `start_method`, in a subactor the backend
that started it), and trees mixing backends are supervised, relay errors
and tear down (cancel, Ctrl-C) like single-backend trees.

The session's backend (the `start_method` fixture) is the backend of the
children; the grandchildren's is the `grandchild` parametrization. A
grandchild of the same process backend as its parent is a single-backend
tree, tested elsewhere, and skipped here; `subint` under `subint` (an
interpreter creating interpreters) is not.

'''
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import typing

import psutil
import pytest
import trio
import tractor
from tractor._testing import nursery_kwargs
from tractor._testing import _reap
from tractor.spawn import _spawn

ALL_BACKENDS: tuple[str, ...] = typing.get_args(_spawn.SpawnMethodKey)
# backends sharing their parent's process
IN_PROCESS: frozenset[str] = frozenset({'subint'})

# every test's own bound; each stays well under it
TEST_BOUND: float = 25


# ---- run inside actors ----

async def whereami() -> dict:
    actor = tractor.current_actor()
    return {
        'name': actor.name,
        'pid': os.getpid(),
        'spawn_method': actor.spawn_method,
    }


async def spawn_one(backend: str|None) -> list[dict]:
    '''Report where we and a child spawned by `backend` (`None`: our default) run.'''
    kwargs = {} if backend is None else {'start_method': backend}
    async with tractor.open_nursery(**kwargs) as an:
        assert an.start_method == (backend or tractor.current_actor().spawn_method)
        portal = await an.run_in_actor(whereami, name='grandchild')
        return [await whereami(), await portal.wait_for_result()]


async def raise_value_error() -> None:
    raise ValueError('from the grandchild')


async def spawn_failing(backend: str) -> None:
    async with tractor.open_nursery(start_method=backend) as an:
        await an.run_in_actor(raise_value_error, name='grandchild')


async def open_bad_nursery(backend: str) -> None:
    async with tractor.open_nursery(start_method=backend):
        raise AssertionError('the nursery must not open')


@tractor.context
async def park_grandchildren(ctx: tractor.Context, backend: str) -> None:
    '''Spawn a daemon and a `run_in_actor` sleeper with `backend`, then park.'''
    async with tractor.open_nursery(start_method=backend) as an:
        daemon = await an.start_actor('gc_daemon', enable_modules=[__name__])
        await an.run_in_actor(trio.sleep_forever, name='gc_sleeper')
        await ctx.started([await whereami(), await daemon.run(whereami)])
        await trio.sleep_forever()


# ---- helpers ----

def skip_unless_mixed(start_method: str, grandchild: str) -> None:
    '''Skip a combination that cannot run here or is no mixed tree.'''
    if grandchild in _spawn._unavailable:
        pytest.skip(_spawn._unavailable[grandchild])
    if grandchild == start_method and grandchild not in IN_PROCESS:
        pytest.skip(f'{grandchild!r} under {grandchild!r} is a single-backend tree')


def check_placement(parent: dict, child: dict, backend: str) -> None:
    '''`child`, spawned by `parent` with `backend`, runs where it should.'''
    assert child['spawn_method'] == backend
    if backend in IN_PROCESS:
        assert child['pid'] == parent['pid']
    else:
        assert child['pid'] != parent['pid']


def other_backend(key: str) -> str:
    '''A usable backend different from `key`.'''
    for candidate in ('trio', 'subint', 'mp_spawn'):
        if candidate != key and candidate not in _spawn._unavailable:
            return candidate
    raise AssertionError('unreachable')


def subint_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith('subint[')]


def foreign_os_threads() -> int:
    '''OS threads of this process not known to the main interpreter.'''
    return len(os.listdir('/proc/self/task')) - threading.active_count()


def actor_procs() -> set[int]:
    '''Our descendant processes (zombies too), less multiprocessing's helpers.'''
    return _reap.actor_descendants()


@pytest.fixture
def nothing_left():
    '''After the test: no actor process, no subint thread or interpreter.'''
    procs_before = actor_procs()
    threads_before = foreign_os_threads()
    yield
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if (
            not actor_procs() - procs_before
            and not subint_threads()
            and foreign_os_threads() <= threads_before
        ):
            break
        time.sleep(0.05)
    assert not actor_procs() - procs_before, 'actor processes were left behind'
    assert not subint_threads()
    # threads of nested sub-interpreters are invisible to `threading`
    assert foreign_os_threads() <= threads_before
    if sys.version_info >= (3, 14):
        import _interpreters
        assert len(_interpreters.list_all()) == 1


grandchild_backends = pytest.mark.parametrize('grandchild', ALL_BACKENDS)


# ---- the nursery's backend and the actor's default ----

def test_root_nursery_honours_start_method(reg_addr, start_method, nothing_left):
    '''
    In a running root whose default is another backend, a nursery given
    `start_method` spawns with it; one without uses the root's default.
    '''
    root_default = other_backend(start_method)

    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, root_default),
            ) as root:
                assert root.spawn_method == root_default
                me = await whereami()
                async with tractor.open_nursery(start_method=start_method) as an:
                    assert an.start_method == start_method
                    portal = await an.run_in_actor(whereami, name='chosen')
                    check_placement(me, await portal.wait_for_result(), start_method)
                async with tractor.open_nursery() as an:
                    assert an.start_method == root_default
                    portal = await an.run_in_actor(whereami, name='default')
                    check_placement(me, await portal.wait_for_result(), root_default)

    trio.run(main)


def test_child_nursery_defaults_to_its_own_backend(reg_addr, start_method, nothing_left):
    '''
    A child's nurseries default to the backend that started it, not to
    the root's default.
    '''
    root_default = other_backend(start_method)

    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, root_default),
            ):
                async with tractor.open_nursery(start_method=start_method) as an:
                    portal = await an.run_in_actor(spawn_one, name='child', backend=None)
                    child, grandchild = await portal.wait_for_result()
        assert child['spawn_method'] == start_method
        check_placement(child, grandchild, start_method)

    trio.run(main)


@grandchild_backends
def test_mixed_tree_places_each_actor(reg_addr, start_method, grandchild, nothing_left):
    '''
    A child of the session's backend spawns a grandchild with another
    one: each reports the backend that started it and lives where that
    backend puts it (same process for `subint`, another one otherwise).
    '''
    skip_unless_mixed(start_method, grandchild)

    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                me = await whereami()
                portal = await an.run_in_actor(spawn_one, name='child', backend=grandchild)
                child, gc = await portal.wait_for_result()
        check_placement(me, child, start_method)
        check_placement(child, gc, grandchild)

    trio.run(main)


# ---- supervision across backends ----

@grandchild_backends
def test_grandchild_error_is_boxed_at_root(reg_addr, start_method, grandchild, nothing_left):
    '''
    An error raised in a grandchild of another backend reaches the root
    boxed twice, naming its source, and the tree is reaped.
    '''
    skip_unless_mixed(start_method, grandchild)

    async def main():
        with trio.fail_after(TEST_BOUND):
            with pytest.raises(tractor.RemoteActorError) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    await an.run_in_actor(spawn_failing, name='child', backend=grandchild)
            assert not an._children
        rae = excinfo.value
        assert rae.boxed_type is tractor.RemoteActorError
        assert rae.src_type is ValueError
        assert rae.src_uid[0] == 'grandchild'
        assert rae.relay_uid[0] == 'child'
        assert 'from the grandchild' in rae.tb_str

    trio.run(main)


@grandchild_backends
def test_cancel_reaches_every_level(reg_addr, start_method, grandchild, nothing_left):
    '''
    Cancelling the root's nursery ends a child and its daemon and
    `run_in_actor` grandchildren of another backend, within bounds.
    '''
    skip_unless_mixed(start_method, grandchild)

    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                root_uid = tractor.current_actor().aid.uid
                portal = await an.start_actor('child', enable_modules=[__name__])
                # the child's context ends because we cancelled the child
                with pytest.raises(tractor.ContextCancelled) as excinfo:
                    async with portal.open_context(
                        park_grandchildren, backend=grandchild,
                    ) as (ctx, (child, gc)):
                        check_placement(child, gc, grandchild)
                        await an.cancel()
            assert not an._children
            # all graceful: the child received the request and was given
            # the cancel phase to end its subtree; nobody was terminated
            assert not an._ended_by_us, an._ended_by_us
        assert tuple(excinfo.value.canceller) == root_uid
        for pid in {child['pid'], gc['pid']} - {os.getpid()}:
            assert not psutil.pid_exists(pid) or (
                psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            )

    trio.run(main)


# ---- keys that cannot be used ----

def test_unknown_key_fails_at_open_nursery(reg_addr, start_method, nothing_left):
    '''
    An unknown key fails `open_nursery()` itself with the error of
    `try_set_start_method()`, in the root and in a subactor.
    '''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, start_method),
            ):
                with pytest.raises(ValueError) as in_root:
                    async with tractor.open_nursery(start_method='fork'):
                        raise AssertionError('the nursery must not open')
                with pytest.raises(ValueError) as from_api:
                    _spawn.try_set_start_method('fork')
                assert str(in_root.value) == str(from_api.value)

                with pytest.raises(tractor.RemoteActorError) as in_child:
                    async with tractor.open_nursery() as an:
                        await an.run_in_actor(open_bad_nursery, name='child', backend='fork')
        assert in_child.value.boxed_type is ValueError
        assert str(from_api.value) in in_child.value.tb_str

    trio.run(main)


def test_unavailable_key_fails_at_open_nursery(reg_addr, start_method, monkeypatch):
    '''
    A backend that cannot run in this interpreter fails `open_nursery()`
    with the reason `try_set_start_method()` gives (here one is made
    unavailable; on Python 3.13 `subint` really is, see below).
    '''
    key = other_backend(start_method)
    reason = f'{key!r} made unavailable by this test'
    monkeypatch.setitem(_spawn._unavailable, key, reason)
    monkeypatch.delitem(_spawn._methods, key)

    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(**nursery_kwargs(reg_addr, start_method)):
                with pytest.raises(RuntimeError, match=reason):
                    async with tractor.open_nursery(start_method=key):
                        raise AssertionError('the nursery must not open')

    trio.run(main)


@pytest.mark.skipif(
    sys.version_info >= (3, 14),
    reason='the subint gate only bites before Python 3.14',
)
def test_subint_refused_at_open_nursery_before_3_14(reg_addr, start_method):
    '''On Python 3.13, `subint` fails `open_nursery()` in a running root, clearly.'''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(**nursery_kwargs(reg_addr, start_method)):
                with pytest.raises(RuntimeError, match='3.14') as excinfo:
                    async with tractor.open_nursery(start_method='subint'):
                        raise AssertionError('the nursery must not open')
        with pytest.raises(RuntimeError) as from_api:
            _spawn.try_set_start_method('subint')
        assert str(excinfo.value) == str(from_api.value)

    trio.run(main)


async def child_debug_mode() -> bool:
    return tractor.debug_mode()


def test_debug_mode_reaches_children_of_every_backend(reg_addr, start_method):
    '''
    `debug_mode=True` on the root is every child's (any backend), and
    `start_actor(debug_mode=...)` overrides it for one child, either way.
    (What debug mode does is in `test_debugger*.py`.)
    '''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method), debug_mode=True,
            ) as an:
                assert tractor.debug_mode()
                inherited = await an.start_actor('inherits', enable_modules=[__name__])
                opted_out = await an.start_actor(
                    'opted_out', enable_modules=[__name__], debug_mode=False,
                )
                assert await inherited.run(child_debug_mode) is True
                assert await opted_out.run(child_debug_mode) is False
                await an.cancel()
            assert not tractor.debug_mode()
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                assert not tractor.debug_mode()
                opted_in = await an.start_actor(
                    'opted_in', enable_modules=[__name__], debug_mode=True,
                )
                assert await opted_in.run(child_debug_mode) is True
                await an.cancel()

    trio.run(main)


# ---- Ctrl-C ----

SIGINT_SCRIPT = textwrap.dedent('''
    import ast, sys
    from contextlib import AsyncExitStack
    import trio, tractor

    async def spawn_mixed(backends):
        # one sleeping grandchild per backend, each from its own nursery
        async with AsyncExitStack() as stack:
            for backend in backends:
                an = await stack.enter_async_context(
                    tractor.open_nursery(start_method=backend))
                await an.run_in_actor(trio.sleep_forever, name=f'gc_{backend}')
            await trio.sleep_forever()

    async def main(reg_addr, tpt_proto, start_method, backends):
        async with tractor.open_nursery(
            registry_addrs=[reg_addr],
            enable_transports=[tpt_proto],
            start_method=start_method,
        ) as an:
            await an.run_in_actor(spawn_mixed, name='child', backends=backends)
            for name in ['child', *(f'gc_{backend}' for backend in backends)]:
                async with tractor.wait_for_actor(name):
                    pass
            print('READY', flush=True)
            await trio.sleep_forever()

    if __name__ == '__main__':
        try:
            trio.run(
                main, ast.literal_eval(sys.argv[1]), sys.argv[2], sys.argv[3],
                sys.argv[4].split(','),
            )
        except KeyboardInterrupt:
            print('GOT-KBI', flush=True)
''')


def test_sigint_tears_down_mixed_tree(tmp_path, reg_addr, tpt_proto, start_method):
    '''
    Ctrl-C at the root of a tree whose child (the session's backend) has
    a grandchild of every available backend ends every actor within 5 s.
    '''
    backends = [key for key in ALL_BACKENDS if key not in _spawn._unavailable]
    script = tmp_path / 'mixed_sigint.py'
    script.write_text(SIGINT_SCRIPT)
    out = tmp_path / 'out.txt'
    err = tmp_path / 'err.txt'
    with out.open('w') as out_f, err.open('w') as err_f:
        proc = subprocess.Popen(
            [sys.executable, str(script), repr(tuple(reg_addr)), tpt_proto,
             start_method, ','.join(backends)],
            cwd=str(tmp_path), stdout=out_f, stderr=err_f,
        )
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 20
        while 'READY' not in out.read_text():
            assert proc.poll() is None, err.read_text()[-3000:]
            assert time.monotonic() < deadline, 'tree never became ready'
            time.sleep(0.05)
        descendants = psutil.Process(proc.pid).children(recursive=True)
        # every grandchild but the `subint` one is a process
        assert len(descendants) >= len(backends) - 1, descendants
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail(f'root did not exit within 5 s of SIGINT\n{err.read_text()[-3000:]}')
        assert time.monotonic() - sent < 5
        stderr = err.read_text()
        assert 'GOT-KBI' in out.read_text(), stderr[-3000:]
        assert rc == 0, stderr[-3000:]
        assert 'remaining subinterpreters' not in stderr
        assert 'abandoned' not in stderr
        _, alive = psutil.wait_procs(descendants, timeout=3)
        assert not alive, alive
    finally:
        for child in descendants:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
