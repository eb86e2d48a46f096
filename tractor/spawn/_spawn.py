'''
The backend-agnostic supervision core.

A spawn backend knows only how to start its kind of actor (a subprocess, a
sub-interpreter, ...) and returns a `ChildHandle` through which the child
can be waited for and killed. Everything else lives here and is shared by
every backend: waiting for the child to connect back, sending its spawn
spec, collecting a `run_in_actor` result, and the teardown ladder (graceful
cancel request, bounded wait, then escalating kills).
'''
from __future__ import annotations

import os
import sys
import time
from typing import (
    Any,
    Awaitable,
    Callable,
    Literal,
    TYPE_CHECKING,
    get_args,
)

import msgspec
import trio

from tractor import log
from tractor._exceptions import (
    ActorFailure,
    TransportClosed,
)
from tractor.ipc._addr import wrap_address
from tractor.ipc._auth import (
    Secret,
    current_secret,
)
from tractor.ipc._uds import (
    UDSAddress,
    remove_stale_sockets,
)
from tractor.msg.types import SpawnSpec
from tractor.runtime import (
    _debug_hooks,
    _state,
)
from tractor.runtime._portal import Portal
from tractor.runtime._runtime import registers_via_parent

if TYPE_CHECKING:
    from tractor.runtime._runtime import Actor
    from tractor.runtime._supervise import ActorNursery

logger = log.get_logger()

SpawnMethodKey = Literal[
    'trio',           # a subprocess started through trio
    'mp_spawn',       # multiprocessing, 'spawn' start method
    'mp_forkserver',  # multiprocessing, 'forkserver' start method
    'subint',         # a CPython sub-interpreter on its own thread (3.14+)
]
# this interpreter's default backend: what nurseries opened without a
# `start_method` use (a child actor's is set at boot to the backend it was
# spawned with, see `_entry._actor_child_main`)
_spawn_method: SpawnMethodKey = 'trio'
_ctx: Any = None

# the working directory when tractor was imported, which a relative
# `__main__` path is relative to (what `multiprocessing.process.ORIGINAL_DIR`
# records, without importing multiprocessing in every actor)
try:
    _ORIGINAL_DIR: str|None = os.path.abspath(os.getcwd())
except OSError:
    _ORIGINAL_DIR = None

# how long a child gets to exit by itself after acknowledging a cancel
# request, and after that, after each escalation step
REAP_GRACE: float = 1.6


class ChildHandle:
    '''
    What a backend returns for a started child: the only operations the
    supervision core needs. Subclasses implement each for their kind.
    '''
    pid: int|None = None
    # how long `hard_kill` waits after each escalation step; a backend
    # whose steps act faster than a process exit may use less
    reap_grace: float = REAP_GRACE
    # how long `hard_kill` waits after `kill()`, when longer than that (a
    # killed subint actor still ends its own children before it goes)
    kill_grace: float|None = None

    async def wait(self) -> None:
        '''Block until the child has exited.'''
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def terminate(self) -> None:
        '''Ask the child to die now (first escalation step).'''
        raise NotImplementedError

    def kill(self) -> None:
        '''Make the child die (last escalation step).'''
        raise NotImplementedError

    def describe_exit(self) -> str:
        '''How the child ended, for error messages.'''
        raise NotImplementedError

    def exited_cleanly(self) -> bool:
        '''Whether the child has ended as a clean exit would (status 0).'''
        raise NotImplementedError

    async def release(self) -> None:
        '''Free what the backend held for the child (after it exited).'''

    @property
    def socket_tag(self) -> str|None:
        '''
        What the child's UDS socket file names end in before `.sock`
        (`@<pid>`, see `UDSAddress.get_random`), so the parent can remove
        the files of a child that died without doing it.
        '''
        return f'@{self.pid}' if self.pid is not None else None


class SpawnArgs(msgspec.Struct):
    '''Everything a backend needs to start one child.'''
    subactor: Any  # the parent-side `Actor` record of the child
    uid: tuple[str, str]
    parent_addr: Any
    loglevel: str|None
    infect_asyncio: bool
    proc_kwargs: dict[str, Any]
    # the tree's shared secret: a backend hands it to the child over a
    # channel no other user can read (never the command line)
    secret: Secret
    # False: the child must not re-import the parent's `__main__` (a
    # backend whose machinery replays it by itself has to refrain)
    inherit_parent_main: bool = True


Backend = Callable[[SpawnArgs], Awaitable[ChildHandle]]

# key -> backend coroutine; backends register themselves when their module
# is imported (see `tractor.spawn.__init__`)
_methods: dict[str, Backend] = {}
# keys whose backend cannot run in this interpreter, with the reason
_unavailable: dict[str, str] = {}


def register_backend(key: str, backend: Backend) -> None:
    _methods[key] = backend


def mark_unavailable(key: str, reason: str) -> None:
    _unavailable[key] = reason


def _check_key(key: str) -> None:
    valid = get_args(SpawnMethodKey)
    if key not in valid:
        raise ValueError(
            f'Spawn method {key!r} is unknown; valid keys are {list(valid)}'
        )
    if key in _unavailable:
        raise RuntimeError(_unavailable[key])
    if key not in _methods:
        raise RuntimeError(
            f'Spawn method {key!r} is not implemented yet; '
            f'available: {list(_methods)}'
        )


def try_set_start_method(key: str) -> Any:
    '''
    Select this process's default spawn backend: the one used by a root
    opened without `start_method` and by every nursery of this actor
    opened without one (`open_nursery(start_method=...)` overrides it per
    nursery). Returns the multiprocessing context for the `mp_*`
    backends, else `None`. An unknown key raises `ValueError`, a backend
    that cannot run in this interpreter `RuntimeError` saying why.
    '''
    global _spawn_method, _ctx
    _check_key(key)
    _spawn_method = key
    if key.startswith('mp_'):
        import multiprocessing as mp
        _ctx = mp.get_context(key.removeprefix('mp_'))
    else:
        _ctx = None
    return _ctx


def nursery_start_method(key: str|None) -> str:
    '''
    The backend an actor nursery spawns with: `key`, or this actor's
    default when `None`. Checked when the nursery opens, so a key that
    cannot work fails there (as `try_set_start_method()` would) rather
    than at the first spawn.
    '''
    if key is None:
        key = _spawn_method
    _check_key(key)
    return key


# -- child supervision --

async def _wait_for_connect(
    actor: Actor,
    uid: tuple[str, str],
    handle: ChildHandle,
) -> Portal:
    '''The child's portal once it connected back; fail if it died first.'''
    async with trio.open_nursery() as tn:
        async def _watch_death() -> None:
            await handle.wait()
            tn.cancel_scope.cancel()

        tn.start_soon(_watch_death)
        _, chan = await actor.ipc_server.wait_for_peer(uid)
        tn.cancel_scope.cancel()
        return Portal(chan)
    raise ActorFailure(
        f'Actor {uid!r} {handle.describe_exit()} before connecting back'
    )


def _mk_spawn_spec(
    actor: Actor,
    subactor: Actor,
    bind_addrs: list[Any]|None,
    runtime_vars: dict[str, Any],
    parent_main_data: dict[str, str],
) -> SpawnSpec:
    return SpawnSpec(
        _parent_main_data=parent_main_data,
        _runtime_vars=runtime_vars,
        enable_modules=subactor.enable_modules,
        reg_addrs=[tuple(addr) for addr in actor.reg_addrs],
        bind_addrs=bind_addrs,
    )


async def soft_kill(
    handle: ChildHandle,
    portal: Portal|None,
) -> None:
    '''
    Wait for the child to exit by itself. If this wait is cancelled, ask
    the child (bounded) to cancel before letting the cancellation through.
    '''
    try:
        await handle.wait()
    except trio.Cancelled:
        with trio.CancelScope(shield=True):
            # debug mode: let whoever is in a REPL finish first
            await _debug_hooks.maybe_wait_for_tty()
            if portal is not None and handle.alive():
                with trio.move_on_after(REAP_GRACE):
                    await portal.cancel_actor()
                    await handle.wait()
        raise


async def hard_kill(
    handle: ChildHandle,
    uid: tuple[str, str],
    grace: float|None = None,
) -> None:
    '''
    Make sure the child is gone: give it `grace` seconds (default: the
    handle's `reap_grace`), then terminate, then kill. Always shielded;
    every step bounded.
    '''
    if grace is None:
        grace = handle.reap_grace
    with trio.CancelScope(shield=True):
        if handle.alive():
            with trio.move_on_after(grace):
                await handle.wait()
            # debug mode: no escalation while a REPL is open somewhere in
            # the tree (the lock is released at once if its holder dies)
            while handle.alive() and await _debug_hooks.repl_in_use():
                await _debug_hooks.maybe_wait_for_tty()
                with trio.move_on_after(grace):
                    await handle.wait()
        kill_grace = max(grace, handle.kill_grace or 0)
        for step, step_grace in ((handle.terminate, grace), (handle.kill, kill_grace)):
            if not handle.alive():
                break
            logger.warning(f'Actor {uid!r} is still alive; escalating: {step.__name__}()')
            step()
            with trio.move_on_after(step_grace):
                await handle.wait()
        if handle.alive():
            logger.error(
                f'Actor {uid!r} could not be killed and was abandoned: '
                f'{handle.describe_exit()}'
            )
        await handle.release()


async def _collect_result(
    an: ActorNursery,
    uid: tuple[str, str],
    portal: Portal,
    handle: ChildHandle,
) -> None:
    '''
    Wait for a `run_in_actor` child's result and record a failure at once
    (which cancels its siblings once the nursery's body has exited); the
    child is cancelled once the body has exited.
    '''
    try:
        await portal.wait_for_result()
        await an._join_procs.wait()
    except TransportClosed as tc:
        if not portal.chan._cancel_called:
            # it went away without a result: report how it ended
            with trio.move_on_after(REAP_GRACE):
                await handle.wait()
            failure = ActorFailure(
                f'Actor {uid!r} {handle.describe_exit()} without returning a result'
            )
            failure.__cause__ = tc
            an._child_failed(uid, failure)
    except trio.Cancelled:
        raise
    except Exception as err:
        an._child_failed(uid, err)
    finally:
        with trio.CancelScope(shield=True):
            await portal.cancel_actor()


async def _until_either(*waits: Callable[[], Awaitable[None]]) -> None:
    '''Return as soon as one of `waits` returns.'''
    async with trio.open_nursery() as tn:
        async def _wait_then_stop(wait: Callable[[], Awaitable[None]]) -> None:
            await wait()
            tn.cancel_scope.cancel()

        for wait in waits:
            tn.start_soon(_wait_then_stop, wait)


def _was_asked_to_end(an: ActorNursery, uid: tuple[str, str], portal: Portal) -> bool:
    '''
    Whether a request to end reached this very child (a cancel request sent
    on its channel, or a terminate while it lived): a nursery that is
    cancelling may find a child that had died before it could ask.
    '''
    return portal.chan._cancel_called or uid in an._ended_by_us


async def _watch_daemon(
    an: ActorNursery,
    uid: tuple[str, str],
    portal: Portal,
    handle: ChildHandle,
) -> None:
    '''
    Report a daemon whose connection ended without anybody asking it to
    (killed, crashed, exited, or just disconnected) as an `ActorFailure`
    of its nursery, at once: like a crashed task in a trio nursery. One
    that exits cleanly by itself (e.g. `cancel_actor()` from inside) is
    only logged. (`_collect_result` does this for `run_in_actor` ones.)
    '''
    await _until_either(portal.chan.wait_closed, handle.wait)
    if _was_asked_to_end(an, uid, portal):
        return
    if portal.chan._exc is not None:
        # its runtime reported why it went away: `new_proc` records that
        return
    # the exit status says more than the lost connection: wait for it
    with trio.move_on_after(REAP_GRACE):
        await handle.wait()
    if _was_asked_to_end(an, uid, portal):
        return
    if handle.alive():
        failure = ActorFailure(
            f'Actor {uid!r} lost its connection to its parent without being '
            f'asked to cancel (it {handle.describe_exit()})'
        )
    elif handle.exited_cleanly():
        logger.info(f'Actor {uid!r} ended itself cleanly')
        return
    else:
        failure = ActorFailure(f'Actor {uid!r} {handle.describe_exit()}')
    an._child_failed(uid, failure)


async def new_proc(
    an: ActorNursery,
    subactor: Actor,
    bind_addrs: list[Any]|None,
    parent_addr: Any,
    runtime_vars: dict[str, Any],
    parent_main_data: dict[str, str],
    *,
    start_method: str,
    main_task: tuple[str, str, dict[str, Any]]|None = None,
    infect_asyncio: bool = False,
    inherit_parent_main: bool = True,
    proc_kwargs: dict[str, Any]|None = None,
    task_status: trio.TaskStatus[Portal] = trio.TASK_STATUS_IGNORED,
) -> None:
    '''
    Spawn one child with the `start_method` backend (the nursery's) and
    supervise it for its whole life; runs as a task in the owning
    `ActorNursery`.

    With `main_task=(ns, func, kwargs)` (a `run_in_actor` child) that task
    is started before the portal is handed out, so a bad call fails the
    spawn itself; its result is collected as soon as it arrives.
    '''
    actor = an._actor
    uid = subactor.aid.uid
    backend = _methods[start_method]
    handle = await backend(SpawnArgs(
        subactor=subactor,
        uid=uid,
        parent_addr=parent_addr,
        loglevel=subactor.loglevel,
        infect_asyncio=infect_asyncio,
        proc_kwargs=proc_kwargs or {},
        secret=current_secret(),
        inherit_parent_main=inherit_parent_main,
    ))
    portal: Portal|None = None
    an._children[uid] = (subactor, handle, None)
    _unreaped.add(handle)
    try:
        portal = await _wait_for_connect(actor, uid, handle)
        if registers_via_parent(actor.is_registrar, parent_addr, actor.reg_addrs):
            # before anyone holds its portal, and before it can register
            actor._hold_requests_until_registered(uid)
        an._children[uid] = (subactor, handle, portal)
        an._portal_ready(uid)
        await portal.chan.send(_mk_spawn_spec(
            actor, subactor, bind_addrs, runtime_vars, parent_main_data,
        ))
        actor._actoruid2nursery[uid] = an
        if main_task is not None:
            ns, func, kwargs = main_task
            portal._expect_result_ctx = await actor.start_remote_task(
                portal.chan, ns, func, kwargs, portal=portal,
            )
        task_status.started(portal)

        async with trio.open_nursery() as tn:
            if main_task is not None:
                tn.start_soon(_collect_result, an, uid, portal, handle)
            else:
                # a daemon's end nobody asked for is an error at once
                tn.start_soon(_watch_daemon, an, uid, portal, handle)
            # a daemon lives until cancelled; either kind is reaped as
            # soon as it exits, whatever the nursery's body is doing
            await soft_kill(handle, portal)
    finally:
        await hard_kill(handle, uid)
        if (
            portal is not None
            and portal.chan._exc is not None
            and uid not in an.errors
        ):
            an._child_failed(uid, portal.chan._exc)
        if handle.alive():
            if portal is not None:
                await _give_up_on(portal, uid, handle)
        else:
            _remove_socket_files(handle, bind_addrs)
        an._children.pop(uid, None)
        actor._actoruid2nursery.pop(uid, None)
        actor._release_requests(uid)
        _unreaped.discard(handle)


# every child this interpreter started and has not reaped yet
_unreaped: set[ChildHandle] = set()


def end_unreaped_children(timeout: float, processes_only: bool = False) -> None:
    '''
    Blocking: for an actor going away without its runtime's teardown
    ladder (a process SIGTERMed, a sub-interpreter interrupted), so none
    of its children outlives it. Terminates every child it has not
    reaped, kills those still alive half of `timeout` later, and waits
    the other half for them. `processes_only`: skip `subint` children
    (they end with our process).
    '''
    handles = [
        handle for handle in list(_unreaped)
        if _alive(handle) and (handle.pid is not None or not processes_only)
    ]
    for step in ('terminate', 'kill'):
        deadline = time.monotonic() + timeout / 2
        for handle in handles:
            if _alive(handle):
                try:
                    getattr(handle, step)()
                except Exception as err:
                    logger.error(f'Could not {step} {handle!r}: {err!r}')
        while any(_alive(handle) for handle in handles):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)


def _alive(handle: ChildHandle) -> bool:
    # called from a signal handler or after our trio run: a handle that
    # cannot even tell (its trio bookkeeping refuses) is taken as gone
    try:
        return handle.alive()
    except Exception:
        return False


async def _give_up_on(portal: Portal, uid: tuple[str, str], handle: ChildHandle) -> None:
    '''
    The child was abandoned (it could not be killed): nothing will ever
    answer on its channel, so end every call, context and stream still
    waiting on it now, with an error naming it.
    '''
    portal.chan._exc = ActorFailure(
        f'Actor {uid!r} was abandoned by its parent: it {handle.describe_exit()}'
    )
    await portal.chan.aclose()


def _remove_socket_files(handle: ChildHandle, bind_addrs: list[Any]|None) -> None:
    '''Remove the UDS socket files a reaped child left behind (if killed).'''
    tag = handle.socket_tag
    if tag is None:
        return
    # where it bound: the default bindspace, or where it was told to
    spaces: set[Any] = set()
    if 'uds' in _state.current_ipc_protos():
        spaces.add(None)
    for addr in bind_addrs or ():
        addr = wrap_address(addr)
        if isinstance(addr, UDSAddress):
            spaces.add(addr.bindspace)
    for space in spaces:
        for path in remove_stale_sockets(tag, space):
            logger.runtime(f'Removed the socket file {str(path)!r} left by a reaped actor')


def parent_main_data() -> dict[str, str]:
    '''
    How a child can re-create this process's `__main__`, shipped to every
    child not spawned with `inherit_parent_main=False`: what
    multiprocessing's spawn start method records (the main module's name
    when it was run with `-m`, else its file). The child applies the
    stdlib's rules too (see `Actor.load_modules()`): nothing for
    `python -m pkg` or an interactive session.

    A subactor passes on what its own parent sent: its `__main__` is the
    runtime's bootstrap, not user code.
    '''
    actor = _state.current_actor(err_on_no_runtime=False)
    if actor is not None and not _state.is_root_process():
        return dict(actor._parent_main_data)
    main = sys.modules.get('__main__')
    name = getattr(getattr(main, '__spec__', None), 'name', None)
    if name is not None:
        return {'init_main_from_name': name}
    path = getattr(main, '__file__', None)
    if path is None:
        return {}
    if not os.path.isabs(path) and _ORIGINAL_DIR is not None:
        path = os.path.join(_ORIGINAL_DIR, path)
    return {'init_main_from_path': os.path.normpath(path)}
