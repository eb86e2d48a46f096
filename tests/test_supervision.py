'''
Supervision like trio's (issue 10), seen from the nursery's body: a
child that ends without being asked to is an error of its nursery *at
once*, wherever the body is (sleeping, receiving from a stream, inside
`open_context`): the body is cancelled, the siblings are cancelled, and
the nursery raises an error naming the actor and how it ended, within
`BOUND` (5 s) of the death, with nothing of the subtree left running
within `BOUND` either (both stretched on a machine busy with other
work, see `load_factor()`): no process, no zombie, no orphan; for `subint` no actor
thread, no sub-interpreter.

How a child is killed depends on the backend; the `how` parameter names
it in every test id:

- `sigkill` (trio, mp_spawn, mp_forkserver): the test SIGKILLs the
  child's pid (which an RPC returned).
- `thread-crash` (subint, whose actors cannot be SIGKILLed alone: they
  are threads of the test's process): an error escapes a system task of
  the child's trio loop, so its `trio.run()`, and with it the actor's
  thread, ends with that error.

`test_dropped_connection_is_an_error` covers, on every backend, a child
whose connection to its parent drops with no cancel request.

Not errors: a child cancelled by `portal.cancel_actor()`, a daemon that
ends itself cleanly.

`test_slow_subtree_is_not_orphaned` covers a child slow (or stuck)
cancelling its own subtree.

`TRACTOR_CHAOS_ROUNDS` (default 1, to keep CI's wall time down; run
many to hunt races) sets the rounds of the chaos test,
`TRACTOR_CHAOS_SEED` its random seed (printed by a failing round). With
`-s` every test prints the measured time from the death to the raise.

'''
from __future__ import annotations

import multiprocessing.forkserver as mp_forkserver
import os
import random
import signal
import socket
import sys
import threading
import time
from dataclasses import (
    dataclass,
    field,
)
from typing import (
    Any,
    Awaitable,
    Callable,
)

import psutil
import pytest
import trio
import tractor
from tractor._exceptions import ActorFailure
from tractor._testing import nursery_kwargs
from tractor.runtime import _supervise
from tractor._testing import _reap
from tractor.spawn._reason import (
    LOST_PARENT_EXIT,
    LOST_PARENT_SAID,
)

# from a child's death to the nursery raising (measured: well under a
# second on every backend, even on a busy machine)
BOUND: float = 5.0
# every test's own bound (each one stays well under it)
TEST_BOUND: float = 25.0
# a body that is not cancelled sleeps past the (most stretched) bound,
# then fails
BODY_SLEEP: float = BOUND * 3 + 1


def load_factor() -> float:
    '''
    How many times more runnable work than cores this machine has (1 to
    3). Developers share their machines: under other work the leaves a
    killed middle leaves behind (they end once they see their parent's
    connection end) take longer to notice it and end.
    '''
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1.0
    return min(3.0, max(1.0, load / (os.cpu_count() or 1)))


def gone_bound() -> float:
    '''
    From a death to the raise, and to every actor of the tree gone:
    `BOUND`, stretched (20 `subint` actors share one GIL: the chaos tree
    takes 2-3 s on a quiet 2-core box, up to 7 s under a load of 15).
    '''
    return BOUND * load_factor()


# how long an armed actor waits before it dies (see `Tree.kill`)
ARM_DELAY: float = 0.05
# what an actor crashed by `_crash_thread` says as it goes
CRASH_SAID = 'simulated crash: the actor thread ends with this error'
CHAOS_ROUNDS: int = int(os.environ.get('TRACTOR_CHAOS_ROUNDS', '1'))
CHAOS_SEED: int = int(os.environ.get('TRACTOR_CHAOS_SEED', str(time.time_ns())))

# how a child is killed, per backend
KILL_HOW: dict[str, str] = {
    'trio': 'sigkill',
    'mp_spawn': 'sigkill',
    'mp_forkserver': 'sigkill',
    'subint': 'thread-crash',
}

def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if 'how' in metafunc.fixturenames:
        backend = metafunc.config.getoption('spawn_backend')
        metafunc.parametrize('how', [KILL_HOW[backend]])


# ---- run inside actors ----

async def get_pid() -> int:
    return os.getpid()


async def sleep_forever() -> None:
    await trio.sleep_forever()


async def _crash_thread(delay: float) -> None:
    await trio.sleep(delay)
    # out of a system task: trio cancels every task and `trio.run()`
    # raises, which ends the actor's thread (or process)
    raise RuntimeError(CRASH_SAID)


async def _drop_parent_conn(delay: float) -> None:
    await trio.sleep(delay)
    # as a network failure would: both ends see the connection end, and
    # nobody asked anybody to cancel
    sock = tractor.current_actor()._parent_chan.transport.stream.socket
    sock.shutdown(socket.SHUT_RDWR)


async def arm(how: str, delay: float = 0.0) -> int:
    '''Make this actor die `how` in `delay` seconds (in the background).'''
    fn = {
        'thread-crash': _crash_thread,
        'dropconn': _drop_parent_conn,
    }[how]
    trio.lowlevel.spawn_system_task(fn, delay)
    return os.getpid()


async def fail_after_delay(delay: float) -> None:
    await trio.sleep(delay)
    raise ValueError('the run_in_actor task failed on purpose')


async def end_own_actor() -> bool:
    '''Cancel the actor this RPC task runs in, from inside.'''
    return await tractor.current_actor().cancel()


@tractor.context
async def streamer(ctx: tractor.Context) -> None:
    '''Stream a counter until cancelled.'''
    await ctx.started(os.getpid())
    async with ctx.open_stream() as stream:
        count = 0
        while True:
            await stream.send(count)
            count += 1
            await trio.sleep(0.02)


@tractor.context
async def parked(ctx: tractor.Context) -> None:
    await ctx.started(os.getpid())
    await trio.sleep_forever()


async def slow_to_cancel(cleanup: float) -> None:
    '''Run until cancelled, then take `cleanup` seconds to clean up.'''
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await trio.sleep(cleanup)


async def run_slow_leaf(cleanup: float) -> None:
    '''
    A middle's main task: a daemon leaf busy in `slow_to_cancel()`, so
    cancelling this middle takes `cleanup` seconds.
    '''
    async with tractor.open_nursery() as an:
        leaf = await an.start_actor('slow_leaf', enable_modules=[__name__])
        _subtree_ids['slow_leaf'] = (await leaf.run(get_pid), leaf.chan.aid.uid)
        _subtree_up.set()
        await leaf.run(slow_to_cancel, cleanup=cleanup)


# a middle actor's subtree (module state of that actor)
_subtree: dict[str, tractor.Portal] = {}
_subtree_ids: dict[str, tuple[int, tuple[str, str]]] = {}
_subtree_up = trio.Event()


async def _start_in_subtree(an: tractor.ActorNursery, name: str) -> None:
    portal = await an.start_actor(name, enable_modules=[__name__])
    _subtree_ids[name] = (await portal.run(get_pid), portal.chan.aid.uid)
    _subtree[name] = portal


async def run_subtree(names: list[str]) -> None:
    '''
    The main task of a middle actor (`run_in_actor`): a nursery of
    daemons, spawned at once, held until cancelled.
    '''
    async with tractor.open_nursery() as an:
        async with trio.open_nursery() as tn:
            for name in names:
                tn.start_soon(_start_in_subtree, an, name)
        _subtree_up.set()
        await trio.sleep_forever()


async def subtree_ids() -> dict[str, tuple[int, tuple[str, str]]]:
    '''name -> (pid, uid) of every actor of this middle's subtree.'''
    await _subtree_up.wait()
    return dict(_subtree_ids)


async def arm_in_subtree(name: str, how: str, delay: float = 0.0) -> int:
    return await _subtree[name].run(arm, how=how, delay=delay)


# ---- helpers ----

def leaves(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [leaf for sub in err.exceptions for leaf in leaves(sub)]
    return [err]


def pid_running(pid: int) -> bool:
    '''Alive and not merely a zombie.'''
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def actor_procs() -> set[int]:
    '''Our descendant processes (zombies too), less multiprocessing's helpers.'''
    return _reap.actor_descendants()


def subint_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith('subint[')]


def foreign_os_threads() -> int:
    '''OS threads of this process unknown to the main interpreter.'''
    return len(os.listdir('/proc/self/task')) - threading.active_count()


def interps() -> list[int]:
    '''Sub-interpreters, less the spares our subint pool keeps warm.'''
    if sys.version_info < (3, 14):
        return [0]
    import _interpreters
    from tractor.spawn import _subint_pool
    spares = set(_subint_pool.spare_ids())
    return [iid for iid, *_ in _interpreters.list_all() if iid not in spares]


@dataclass
class Leftovers:
    '''What ran before a test, to tell what it left behind.'''
    procs: set[int] = field(default_factory=actor_procs)
    foreign_threads: int = field(default_factory=foreign_os_threads)

    def left(self, pids: set[int]) -> list[str]:
        '''What still runs (empty: nothing); `pids`: every actor of the tree.'''
        found = [f'pid {pid} still running' for pid in pids if pid_running(pid)]
        new = actor_procs() - self.procs
        if new:
            found.append(f'new descendant processes {sorted(new)}')
        if subint_threads():
            found.append(f'actor threads {subint_threads()}')
        if len(interps()) > 1:
            found.append(f'sub-interpreters {interps()}')
        if foreign_os_threads() > self.foreign_threads:
            found.append('threads of nested sub-interpreters')
        return found

    async def wait_gone(self, pids: set[int], timeout: float) -> tuple[float, list[str]]:
        '''Poll until nothing is left (or `timeout`): when, and what is left.'''
        pids = pids - {os.getpid()}
        with trio.move_on_after(timeout):
            while self.left(pids):
                await trio.sleep(0.02)
        return time.monotonic(), self.left(pids)


@dataclass
class Tree:
    '''The actors under a test's nursery: name -> portal, pid, uid.'''
    an: tractor.ActorNursery
    portals: dict[str, tractor.Portal] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    uids: dict[str, tuple[str, str]] = field(default_factory=dict)
    # grandchild -> its parent (a middle)
    parents: dict[str, str] = field(default_factory=dict)

    async def daemon(self, name: str) -> None:
        portal = await self.an.start_actor(name, enable_modules=[__name__])
        await self._add(name, portal)

    async def ria(self, fn: Callable, name: str, **kwargs) -> None:
        portal = await self.an.run_in_actor(fn, name=name, **kwargs)
        await self._add(name, portal)

    async def _add(self, name: str, portal: tractor.Portal) -> None:
        self.portals[name] = portal
        self.uids[name] = portal.chan.aid.uid
        self.pids[name] = await portal.run(get_pid)

    async def middle(self, name: str, children: list[str]) -> None:
        '''A `run_in_actor` child holding a nursery of daemons `children`.'''
        await self.ria(run_subtree, name, names=children)
        ids = await self.portals[name].run(subtree_ids)
        for child in children:
            self.parents[child] = name
            self.pids[child], uid = ids[child]
            self.uids[child] = tuple(uid)

    async def kill(self, name: str, how: str) -> float:
        '''Make actor `name` die `how`; return when it happened.'''
        if how == 'sigkill':
            os.kill(self.pids[name], signal.SIGKILL)
            return time.monotonic()
        # armed with a delay, so the reply of the arming call goes out
        # before the actor dies
        if name in self.parents:
            await self.portals[self.parents[name]].run(
                arm_in_subtree, name=name, how=how, delay=ARM_DELAY,
            )
        else:
            await self.portals[name].run(arm, how=how, delay=ARM_DELAY)
        # the death follows within `ARM_DELAY`: times measured from here
        # err on the long side
        return time.monotonic()


async def spawn_all(*spawns: Callable[[], Awaitable[Any]]) -> None:
    '''Run the spawning coroutine functions at once.'''
    async with trio.open_nursery() as tn:
        for spawn in spawns:
            tn.start_soon(spawn)


async def run_body(body: str, peer: tractor.Portal|None, in_state: trio.Event) -> None:
    '''
    Be in state `body` until cancelled (at most `BODY_SLEEP`); `in_state`
    is set once there.
    '''
    if body == 'sleep':
        in_state.set()
        await trio.sleep(BODY_SLEEP)
    elif body == 'stream':
        async with peer.open_context(streamer) as (ctx, _):
            async with ctx.open_stream() as stream:
                with trio.move_on_after(BODY_SLEEP):
                    async for count in stream:
                        if count == 3:
                            in_state.set()
    elif body == 'context':
        async with peer.open_context(parked) as (ctx, _):
            in_state.set()
            await trio.sleep(BODY_SLEEP)
    else:
        raise ValueError(body)


@dataclass
class Outcome:
    '''What happened around a death: when, what was raised, what was left.'''
    err: BaseException|None = None
    killed_at: float|None = None
    raised_at: float|None = None
    gone_at: float|None = None
    left: list[str] = field(default_factory=list)
    body_ended: bool = False
    tree: Tree|None = None

    @property
    def took(self) -> float:
        return self.raised_at - self.killed_at

    def check_bounded(self) -> None:
        '''
        The nursery raised, and the whole tree was gone, within
        `gone_bound()` of the death.
        '''
        assert self.killed_at is not None, f'the kill never happened: {self.err!r}'
        assert not self.body_ended, 'the body was not cancelled'
        assert self.err is not None, 'the nursery did not raise'
        limit = gone_bound()
        measured = (
            f'raised {self.took:.2f} s after the death, all gone after '
            f'{self.gone_at - self.killed_at:.2f} s (bound {limit:.1f} s)'
        )
        assert self.took < limit, measured
        # the siblings too: every child's spawn task is done
        assert not self.tree.an._children, self.tree.an._children
        assert not self.left, f'{self.left}: {measured}'
        assert self.gone_at - self.killed_at < limit, measured
        # shown with `-s`
        print(measured)


async def kill_during_body(
    reg_addr: Any,
    start_method: str,
    build: Callable[[Tree], Awaitable[None]],
    kill: Callable[[Tree], Awaitable[float]],
    body: str = 'sleep',
    peer: str|None = None,
) -> Outcome:
    '''
    Open a nursery, `build()` a tree in it, then be in state `body` (in
    a dialog with actor `peer`) while `kill()` (returning when it
    killed) runs in the background; return what happened. A body that
    is not cancelled cancels the nursery when it ends, so a failing
    test still ends in time.
    '''
    out = Outcome()
    leftovers = Leftovers()

    async def killer(tree: Tree, in_state: trio.Event) -> None:
        await in_state.wait()
        await trio.sleep(0.1)
        # not cut short by the nursery raising because of it
        with trio.CancelScope(shield=True) as cs:
            cs.deadline = trio.current_time() + BOUND
            out.killed_at = await kill(tree)

    with trio.fail_after(TEST_BOUND):
        async with trio.open_nursery() as tn:
            try:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    out.tree = tree = Tree(an)
                    await build(tree)
                    in_state = trio.Event()
                    tn.start_soon(killer, tree, in_state)
                    await run_body(body, tree.portals.get(peer), in_state)
                    out.body_ended = True
                    await an.cancel()
            except Exception as err:
                out.raised_at = time.monotonic()
                out.err = err
            # a nursery that raised before the body got to its state
            tn.cancel_scope.cancel()
        out.gone_at, out.left = await leftovers.wait_gone(
            set(out.tree.pids.values()), gone_bound(),
        )
    return out


def death_said(how: str, ria: bool = False) -> str:
    '''How the parent describes a child that died `how`.'''
    said = {
        'sigkill': 'was killed by SIGKILL',
        # its `trio.run()` crashed: the subint backend has the error
        # (a process's would be `exited with code 1 (<the same>)`)
        'thread-crash': (
            'exited abnormally: failed: TrioInternalError: internal error '
            f'in Trio - please file a bug! (from RuntimeError: {CRASH_SAID})'
        ),
    }[how]
    if ria:
        said += ' without returning a result'
    return said


def is_death_of(
    err: BaseException,
    uid: tuple[str, str],
    how: str,
    ria: bool = False,
) -> bool:
    '''`err` is its parent's report of the death of child `uid`.'''
    return (
        type(err) is ActorFailure
        and str(err) == f'Actor {uid!r} {death_said(how, ria)}'
    )


def is_relayed_death_of(
    err: BaseException,
    uid: tuple[str, str],
    parent: tuple[str, str],
    how: str,
) -> bool:
    '''`err` is the death of grandchild `uid` relayed by its `parent`.'''
    return (
        type(err) is tractor.RemoteActorError
        and err.boxed_type is ActorFailure
        and err.src_uid == parent
        and f'ActorFailure: Actor {uid!r} {death_said(how)}' in err.tb_str
    )


# ---- a child dies while the body sleeps, streams, or is in a context ----

async def build_victim(tree: Tree, victim: str) -> None:
    '''A sibling daemon and the victim (for a grandchild, its parent too).'''
    if victim == 'daemon':
        await spawn_all(
            lambda: tree.daemon('sibling'),
            lambda: tree.daemon('victim'),
        )
    elif victim == 'ria':
        await spawn_all(
            lambda: tree.daemon('sibling'),
            lambda: tree.ria(sleep_forever, 'victim'),
        )
    elif victim == 'grandchild':
        await spawn_all(
            lambda: tree.daemon('sibling'),
            lambda: tree.middle('middle', ['victim', 'gc_sibling']),
        )
    else:
        raise ValueError(victim)


@pytest.mark.parametrize('body', ['sleep', 'stream', 'context'])
@pytest.mark.parametrize('victim', ['daemon', 'ria', 'grandchild'])
def test_death_cancels_the_body(reg_addr, start_method, how, victim, body):
    '''
    A daemon, a `run_in_actor` child or a grandchild (a daemon of a
    `run_in_actor` middle) dies `how` while the body sleeps, reads a
    stream from it (from its parent, for a grandchild) or sits in a
    context with it: the nursery raises within `BOUND` the report of
    that death naming the actor and how it ended (for a grandchild the
    middle's error, boxed), the body's sleep is cut short, the sibling
    (and the grandchild's sibling) is gone, nothing is left.

    A body reading a stream from the dead child also raises that
    stream's `TransportClosed`: the nursery then raises both errors.

    '''
    peer = 'middle' if victim == 'grandchild' else 'victim'

    async def main() -> Outcome:
        return await kill_during_body(
            reg_addr, start_method,
            build=lambda tree: build_victim(tree, victim),
            kill=lambda tree: tree.kill('victim', how),
            body=body,
            peer=peer,
        )

    out = trio.run(main)
    out.check_bounded()
    uids = out.tree.uids
    errs = leaves(out.err)
    if victim == 'grandchild':
        death = [e for e in errs if is_relayed_death_of(e, uids['victim'], uids['middle'], how)]
    else:
        death = [e for e in errs if is_death_of(e, uids['victim'], how, ria=victim == 'ria')]
    assert len(death) == 1, repr(out.err)
    if body == 'stream' and victim != 'grandchild':
        # every error that happened: the death and the stream it broke
        assert isinstance(out.err, ExceptionGroup), repr(out.err)
        others = [e for e in errs if e is not death[0]]
        assert len(others) == 1, repr(out.err)
        assert type(others[0]) is tractor.TransportClosed
        assert f'victim@{out.tree.pids["victim"]}' in str(others[0])
    else:
        # the bare death report, nothing else
        assert out.err is death[0], repr(out.err)


@pytest.mark.parametrize('body', ['stream', 'context'])
def test_death_cancels_a_dialog_with_a_sibling(reg_addr, start_method, how, body):
    '''
    A daemon dies `how` while the body streams from (or sits in a
    context with) a healthy sibling: the body's dialog is cancelled
    with the body, the nursery raises only the death of the daemon,
    within `BOUND`, and the sibling is gone.

    '''
    async def main() -> Outcome:
        return await kill_during_body(
            reg_addr, start_method,
            build=lambda tree: build_victim(tree, 'daemon'),
            kill=lambda tree: tree.kill('victim', how),
            body=body,
            peer='sibling',
        )

    out = trio.run(main)
    out.check_bounded()
    assert is_death_of(out.err, out.tree.uids['victim'], how), repr(out.err)


@pytest.mark.parametrize('body', ['sleep', 'stream', 'context'])
def test_forkserver_death(reg_addr, start_method, body):
    '''
    `mp_forkserver`: SIGKILL the forkserver process itself while the
    body sleeps, streams from a child or is in a context with it.

    No actor ends with it (its children run on, orphaned, followed
    through a pidfd), so it is no error of the nursery: the body goes
    on, the children still answer, and a new child can still be
    spawned (a new forkserver is started). A child that dies after
    that is still an error at once: the nursery raises within `BOUND`
    naming it (its exit status went with the forkserver), the other
    children, orphans too, are cancelled, and nothing is left.

    '''
    if start_method != 'mp_forkserver':
        pytest.skip('only the mp_forkserver backend has a forkserver process to kill')
    old_server: dict[str, int] = {}

    async def build(tree: Tree) -> None:
        await spawn_all(
            lambda: tree.daemon('sibling'),
            lambda: tree.daemon('victim'),
        )
        old_server['pid'] = mp_forkserver._forkserver._forkserver_pid
        assert psutil.Process(tree.pids['victim']).ppid() == old_server['pid']

    async def kill(tree: Tree) -> float:
        fs_pid = old_server['pid']
        os.kill(fs_pid, signal.SIGKILL)
        with trio.fail_after(BOUND):
            while pid_running(fs_pid):
                await trio.sleep(0.01)
        # let the supervisors see the forkserver's end
        await trio.sleep(0.3)
        # nothing failed: the body runs on, the orphans still answer
        assert not tree.an.errors
        assert not tree.an._body_scope.cancel_called
        for name in ('sibling', 'victim'):
            assert await tree.portals[name].run(get_pid) == tree.pids[name]
            assert psutil.Process(tree.pids[name]).ppid() != fs_pid
        # and the nursery can still spawn: with a new forkserver
        await tree.daemon('late')
        assert mp_forkserver._forkserver._forkserver_pid != fs_pid
        assert not pid_running(fs_pid)
        os.kill(tree.pids['victim'], signal.SIGKILL)
        return time.monotonic()

    async def main() -> Outcome:
        return await kill_during_body(
            reg_addr, start_method, build, kill, body, peer='sibling',
        )

    out = trio.run(main)
    out.check_bounded()
    uid = out.tree.uids['victim']
    assert type(out.err) is ActorFailure, repr(out.err)
    assert str(out.err) == (
        f'Actor {uid!r} ended after its forkserver died (exit status unknown)'
    )
    # the old forkserver was reaped too (by the new one's start)
    assert not psutil.pid_exists(old_server['pid'])


@pytest.mark.parametrize('kind', ['daemon', 'ria'])
def test_dropped_connection_is_an_error(reg_addr, start_method, kind):
    '''
    `dropconn`, on every backend: a child's connection to its parent
    drops (the child shuts its socket down, as a network failure would)
    with no cancel request, while the body sleeps. That child is lost
    to its nursery: an error at once, within `BOUND`, naming it; the
    sibling is cancelled, nothing is left.

    '''
    async def build(tree: Tree) -> None:
        if kind == 'daemon':
            victim = lambda: tree.daemon('victim')  # noqa: E731
        else:
            victim = lambda: tree.ria(sleep_forever, 'victim')  # noqa: E731
        await spawn_all(lambda: tree.daemon('sibling'), victim)

    async def main() -> Outcome:
        return await kill_during_body(
            reg_addr, start_method, build,
            kill=lambda tree: tree.kill('victim', 'dropconn'),
        )

    out = trio.run(main)
    out.check_bounded()
    uid = out.tree.uids['victim']
    # the child, having lost its parent, cancels itself and exits saying
    # so (a process with status `LOST_PARENT_EXIT`): the parent reports
    # that (a `run_in_actor` child: gone without a result)
    if start_method == 'subint':
        exited = f'exited ({LOST_PARENT_SAID})'
    else:
        exited = f'exited with code {LOST_PARENT_EXIT} ({LOST_PARENT_SAID})'
    if kind == 'ria':
        exited += ' without returning a result'
    assert type(out.err) is ActorFailure, repr(out.err)
    assert str(out.err) == f'Actor {uid!r} {exited}'


# ---- run_in_actor errors, and ends that are no error ----

def test_ria_error_cancels_a_sleeping_body(reg_addr, start_method):
    '''
    A `run_in_actor` child whose task raises cancels the body at once,
    not once the body's sleep is over (as upstream tractor does): the
    nursery raises its boxed error well within `BOUND`, the sibling
    daemon is cancelled, nothing is left.

    '''
    async def main() -> tuple[Outcome, float]:
        out = Outcome()
        leftovers = Leftovers()
        with trio.fail_after(TEST_BOUND):
            try:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    out.tree = tree = Tree(an)
                    await tree.daemon('sibling')
                    await tree.ria(fail_after_delay, 'failer', delay=0.3)
                    # when the task fails: it started before its pid came back
                    out.killed_at = time.monotonic() + 0.3
                    await trio.sleep(BODY_SLEEP)
                    out.body_ended = True
                    await an.cancel()
            except Exception as err:
                out.raised_at = time.monotonic()
                out.err = err
            out.gone_at, out.left = await leftovers.wait_gone(
                set(out.tree.pids.values()), gone_bound(),
            )
        return out

    out = trio.run(main)
    out.check_bounded()
    err = out.err
    assert type(err) is tractor.RemoteActorError, repr(err)
    assert err.boxed_type is ValueError
    assert err.src_uid == out.tree.uids['failer']
    assert 'the run_in_actor task failed on purpose' in err.tb_str


async def wait_reaped(an: tractor.ActorNursery, uid: tuple[str, str]) -> None:
    '''Until the child's spawn task is done (so its end was judged).'''
    with trio.fail_after(gone_bound()):
        while uid in an._children:
            await trio.sleep(0.02)


def test_daemon_ending_itself_is_not_an_error(reg_addr, start_method):
    '''
    A daemon that cancels its own actor from inside an RPC task exits
    cleanly: that is logged, not raised. The body keeps running (its
    sleep is not cut short), its other children still work, and the
    nursery exits cleanly when the body ends.

    '''
    async def main() -> None:
        leftovers = Leftovers()
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                tree = Tree(an)
                await spawn_all(
                    lambda: tree.daemon('quitter'),
                    lambda: tree.daemon('sibling'),
                )
                try:
                    await tree.portals['quitter'].run(end_own_actor)
                except tractor.TransportClosed:
                    # its reply may go down with its connection: not our point
                    pass
                # its spawn task is done: how it ended has been judged
                await wait_reaped(an, tree.uids['quitter'])
                started = time.monotonic()
                await trio.sleep(0.2)
                assert time.monotonic() - started >= 0.2
                assert not an.errors
                sibling = tree.portals['sibling']
                assert await sibling.run(get_pid) == tree.pids['sibling']
                assert await sibling.cancel_actor() is True
            assert not an.errors
            _, left = await leftovers.wait_gone(set(tree.pids.values()), gone_bound())
            assert not left, left

    trio.run(main)


def test_cancel_actor_is_not_an_error(reg_addr, start_method):
    '''
    Children cancelled with `portal.cancel_actor()`, a daemon and a
    `run_in_actor` one still running its task, are no error: the body
    goes on and the nursery exits cleanly.

    '''
    async def main() -> None:
        leftovers = Leftovers()
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                tree = Tree(an)
                await spawn_all(
                    lambda: tree.daemon('daemon'),
                    lambda: tree.ria(sleep_forever, 'sleeper'),
                )
                for name in ('daemon', 'sleeper'):
                    assert await tree.portals[name].cancel_actor() is True
                    await wait_reaped(an, tree.uids[name])
                await trio.sleep(0.3)
                assert not an.errors
                assert not an._body_scope.cancel_called
            assert not an.errors
            _, left = await leftovers.wait_gone(set(tree.pids.values()), gone_bound())
            assert not left, left

    trio.run(main)


# a leaf's cleanup, once cancelled: longer than a cancel request is given
# to be received (`Portal.cancel_timeout`), or longer than any bound
SLOW_CLEANUP: dict[str, float] = {'slow': 1.0, 'stuck': 60.0}
# the root's cancel phase for `stuck`: shorter than its middle's own (the
# default), so the root gives up on the middle first, deterministically
STUCK_PHASE: float = 1.0


@pytest.mark.parametrize('leaf', sorted(SLOW_CLEANUP))
def test_slow_subtree_is_not_orphaned(reg_addr, start_method, how, leaf, monkeypatch):
    '''
    A daemon dies `how` next to a `run_in_actor` middle whose leaf is
    slow to clean up once cancelled:

    - `slow`: 1 s, more than a cancel request is given to be received:
      the middle received the root's request, so it is given the rest of
      the cancel phase to cancel its leaf, which ends gracefully;
    - `stuck`: longer than any bound: the root's cancel phase (here
      `STUCK_PHASE`, shorter than the middle's) ends, the root
      terminates the middle, which terminates (then kills) its leaf
      before it goes.

    Either way, when the nursery raises the death, within `BOUND`, the
    middle's subtree is gone too, the leaf included: none of it runs on
    as an orphan.

    '''
    cleanup = SLOW_CLEANUP[leaf]
    if leaf == 'stuck':
        # in the root only: the middle is another process (or interpreter)
        monkeypatch.setattr(_supervise, 'CANCEL_PHASE_TIMEOUT', STUCK_PHASE)

    async def build(tree: Tree) -> None:
        await spawn_all(
            lambda: tree.daemon('victim'),
            lambda: tree.ria(run_slow_leaf, 'middle', cleanup=cleanup),
        )
        ids = await tree.portals['middle'].run(subtree_ids)
        tree.pids['slow_leaf'], uid = ids['slow_leaf']
        tree.uids['slow_leaf'] = tuple(uid)

    async def main() -> tuple[Outcome, list[str]]:
        out = Outcome()
        leftovers = Leftovers()
        with trio.fail_after(TEST_BOUND):
            try:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    out.tree = tree = Tree(an)
                    await build(tree)
                    out.killed_at = await tree.kill('victim', how)
                    await trio.sleep(BODY_SLEEP)
                    out.body_ended = True
                    await an.cancel()
            except Exception as err:
                out.raised_at = time.monotonic()
                out.err = err
            # what still runs when the nursery raised
            left_at_raise = leftovers.left(set(out.tree.pids.values()) - {os.getpid()})
            out.gone_at, out.left = await leftovers.wait_gone(
                set(out.tree.pids.values()), gone_bound(),
            )
        return out, left_at_raise

    out, left_at_raise = trio.run(main)
    assert is_death_of(out.err, out.tree.uids['victim'], how), repr(out.err)
    out.check_bounded()
    assert not left_at_raise, left_at_raise


# ---- chaos: a random actor of a 20-actor tree, several rounds ----

CHAOS_MIDDLES: int = 4
CHAOS_LEAVES: int = 4  # per middle: 4 + 4 * 4 = 20 actors


def test_chaos_random_death_in_a_tree(reg_addr, start_method, how):
    '''
    `CHAOS_ROUNDS` rounds: build a 20-actor tree (4 `run_in_actor`
    middles, 4 daemons under each, spawned at once), kill a random
    middle or leaf `how` while the body sleeps; each round the nursery
    raises the death (a leaf's relayed by its middle) within `BOUND`
    and leaves nothing running.

    '''
    rng = random.Random(CHAOS_SEED)

    async def one_round(n: int) -> str:
        middles = [f'mid{m}' for m in range(CHAOS_MIDDLES)]
        leaves_of = {
            mid: [f'{mid}_leaf{i}' for i in range(CHAOS_LEAVES)] for mid in middles
        }
        pick: dict[str, str] = {}

        async def build(tree: Tree) -> None:
            await spawn_all(*(
                lambda mid=mid: tree.middle(mid, leaves_of[mid]) for mid in middles
            ))
            assert len(tree.pids) == CHAOS_MIDDLES * (1 + CHAOS_LEAVES)
            pick['name'] = rng.choice(sorted(tree.pids))

        async def kill(tree: Tree) -> float:
            return await tree.kill(pick['name'], how)

        out = await kill_during_body(reg_addr, start_method, build, kill)
        where = f'round {n}, seed {CHAOS_SEED}, killed {pick.get("name")}'
        try:
            out.check_bounded()
            name = pick['name']
            uids = out.tree.uids
            if name in out.tree.parents:
                parent = uids[out.tree.parents[name]]
                assert is_relayed_death_of(out.err, uids[name], parent, how), repr(out.err)
            else:
                assert is_death_of(out.err, uids[name], how, ria=True), repr(out.err)
        except AssertionError as err:
            raise AssertionError(f'{where}: {err}') from err
        return f'{where}: raised in {out.took:.2f} s'

    async def main() -> list[str]:
        return [await one_round(n) for n in range(CHAOS_ROUNDS)]

    for line in trio.run(main):
        print(line)
