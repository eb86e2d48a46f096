'''
`ActorNursery`: spawns child actors and supervises them the way a trio
nursery supervises tasks (one-cancels-all), collecting their errors.

This module sits in the runtime layer, below the spawn backends and the
root-actor entry point; those install themselves here (`_spawner`,
`_root_opener`) when imported, so nothing here imports them.
'''
from __future__ import annotations

import warnings
from functools import partial
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
    Callable,
)

import trio

from tractor import log
from tractor._code_load import imported_module_file
from tractor._exceptions import ActorTooSlowError
from tractor.ipc._addr import wrap_address
from tractor.trionics._eg import is_multi_cancelled

from . import (
    _debug_hooks,
    _state,
)
from ._portal import (
    Portal,
    check_plain_async_fn,
)
from ._runtime import Actor

logger = log.get_logger()

_shutdown_msg: str = 'Actor-runtime-shutdown'

# bound on the graceful phase of `ActorNursery.cancel()`; children that
# have not acknowledged by then are terminated
CANCEL_PHASE_TIMEOUT: float = 3.0

# installed by `tractor.spawn` and `tractor._root`
_spawner: Callable|None = None
# `start_method` given to `open_nursery()` (or `None`) -> the checked key
# of the backend that nursery spawns with
_start_method_for: Callable[[str|None], str]|None = None
_root_opener: Callable|None = None
_main_data_for: Callable[[], dict[str, str]]|None = None


def merge_module_paths(
    enable_modules: list[str]|None,
    rpc_module_paths: list[str]|None,
) -> list[str]:
    '''`enable_modules` plus the deprecated `rpc_module_paths` (warns).'''
    modules = list(enable_modules or [])
    if rpc_module_paths:
        warnings.warn(
            '`rpc_module_paths` is deprecated; use `enable_modules`',
            DeprecationWarning,
            stacklevel=4,
        )
        modules.extend(rpc_module_paths)
    return modules


class ActorNursery:
    '''
    Spawns and supervises child actors; created by `open_nursery()`.

    `start_method` is the spawn backend every child of this nursery is
    started with (`'trio'`, `'mp_spawn'`, `'mp_forkserver'` or
    `'subint'`).
    '''

    def __init__(
        self,
        actor: Actor,
        ria_nursery: trio.Nursery,
        da_nursery: trio.Nursery,
        errors: dict[tuple[str, str], BaseException],
        start_method: str,
    ) -> None:
        self._actor = actor
        self.start_method = start_method
        self._ria_nursery = ria_nursery
        self._da_nursery = da_nursery
        self.errors = errors
        self._children: dict[tuple[str, str], tuple[Actor, Any, Portal|None]] = {}
        self._portal_events: dict[tuple[str, str], trio.Event] = {}
        # set once the body has exited: from then on a child's failure
        # cancels its siblings immediately (before, it only is recorded)
        self._join_procs = trio.Event()
        self._cancel_called: bool = False
        self.cancelled_caught: bool = False
        self.exited = trio.Event()
        self._implicit_runtime_started: bool = False
        # children this nursery terminated while they were alive
        self._ended_by_us: set[tuple[str, str]] = set()
        # wraps the nursery's body: a child's failure cancels it
        self._body_scope: trio.CancelScope|None = None

    @property
    def cancel_called(self) -> bool:
        return self._cancel_called

    @property
    def cancelled(self) -> bool:
        warnings.warn(
            '`ActorNursery.cancelled` is deprecated; use `.cancel_called`',
            DeprecationWarning,
            stacklevel=2,
        )
        return self._cancel_called

    # -- spawning --
    async def start_actor(
        self,
        name: str,
        *,
        bind_addrs: list[Any]|None = None,
        rpc_module_paths: list[str]|None = None,
        enable_transports: list[str]|None = None,
        enable_modules: list[str]|None = None,
        loglevel: str|None = None,
        debug_mode: bool|None = None,
        infect_asyncio: bool = False,
        inherit_parent_main: bool = True,
        nursery: trio.Nursery|None = None,
        proc_kwargs: dict[str, Any]|None = None,
        _main_task: tuple[str, str, dict[str, Any]]|None = None,
    ) -> Portal:
        '''
        Spawn a daemon child actor that serves RPC until cancelled; returns
        its portal once it connected back and received its spawn spec.

        `debug_mode` overrides this actor's debug mode for the child and
        its subtree (`None`: inherit).
        '''
        modules = merge_module_paths(enable_modules, rpc_module_paths)
        # imported here first, as upstream does: a module that cannot be
        # imported fails this call with its own error, before any spawn
        enabled = {
            mod: '' if mod in ('__main__', '__mp_main__') else imported_module_file(mod)
            for mod in modules
        }

        actor = self._actor
        # the child logs to the console like this actor does, except for
        # what its own `loglevel` (a level or a log-spec) says
        console_levels = log.console_log_levels()
        boot_level = None
        if loglevel:
            try:
                console_levels.update(log.logspec_levels(loglevel))
            except ValueError:
                # neither a level nor a log-spec: the child refuses it as
                # it boots, and its reason reaches us as an `ActorFailure`
                boot_level = loglevel
        subactor = Actor(
            name,
            enable_modules=enabled,
            loglevel=boot_level or str(
                console_levels.get(log._proj_name)
                or actor.loglevel
                or log.get_loglevel()
            ),
            registry_addrs=actor.reg_addrs,
        )
        runtime_vars = _state.get_runtime_vars()
        runtime_vars['_console_log_levels'] = console_levels
        runtime_vars['_is_root'] = False
        runtime_vars['_is_infected_aio'] = infect_asyncio
        if debug_mode is not None:
            # this child (and its subtree) only: crash REPLs, `pause()`
            runtime_vars['_debug_mode'] = bool(debug_mode)
        main_data = _main_data_for() if inherit_parent_main else {}
        parent_addr = actor.accept_addrs[0]
        self._portal_events[subactor.aid.uid] = trio.Event()
        return await (nursery or self._da_nursery).start(
            partial(
                _spawner,
                start_method=self.start_method,
                main_task=_main_task,
                infect_asyncio=infect_asyncio,
                inherit_parent_main=inherit_parent_main,
                proc_kwargs=proc_kwargs,
            ),
            self,
            subactor,
            [wrap_address(addr).unwrap() for addr in bind_addrs] if bind_addrs else None,
            parent_addr,
            runtime_vars,
            main_data,
        )

    async def run_in_actor(
        self,
        fn: Callable,
        *,
        name: str|None = None,
        bind_addrs: list[Any]|None = None,
        rpc_module_paths: list[str]|None = None,
        enable_modules: list[str]|None = None,
        loglevel: str|None = None,
        infect_asyncio: bool = False,
        inherit_parent_main: bool = True,
        proc_kwargs: dict[str, Any]|None = None,
        **kwargs,
    ) -> Portal:
        '''
        Spawn a child actor running `fn(**kwargs)` as its one main task; the
        child is cancelled once that result is in.
        '''
        check_plain_async_fn(fn)
        modules = [fn.__module__, *(enable_modules or [])]
        return await self.start_actor(
            name or fn.__name__,
            bind_addrs=bind_addrs,
            rpc_module_paths=rpc_module_paths,
            enable_modules=modules,
            loglevel=loglevel,
            infect_asyncio=infect_asyncio,
            inherit_parent_main=inherit_parent_main,
            nursery=self._ria_nursery,
            proc_kwargs=proc_kwargs,
            _main_task=(fn.__module__, fn.__name__, kwargs),
        )

    def _portal_ready(self, uid: tuple[str, str]) -> None:
        event = self._portal_events.get(uid)
        if event is not None:
            event.set()

    # -- cancellation --
    def _child_failed(self, uid: tuple[str, str], err: BaseException) -> None:
        '''
        Record a child's failure and act like a trio nursery whose task
        crashed: cancel the body (whose exit then cancels the other
        children) or, once the body has exited, the other children.
        '''
        self.errors.setdefault(uid, err)
        if self._join_procs.is_set():
            self._cancel_soon()
        elif self._body_scope is not None:
            self._body_scope.cancel()

    def _cancel_soon(self) -> None:
        if not self._cancel_called:
            self._cancel_called = True
            self._da_nursery.start_soon(self.cancel, name='cancel-on-child-error')

    def _body_exited(self) -> None:
        self._join_procs.set()
        if self.errors:
            self._cancel_soon()

    async def cancel(self, hard_kill: bool = False) -> None:
        '''
        Cancel every child: a graceful cancel request to each (the whole
        phase bounded), terminating those that do not acknowledge in time.
        '''
        self._cancel_called = True
        with trio.CancelScope(shield=True):
            children = dict(self._children)
            terminated: dict[tuple[str, str], Any] = {}
            while True:
                # debug mode: nobody is cancelled while a REPL is open
                await _debug_hooks.maybe_wait_for_tty()
                with trio.move_on_after(CANCEL_PHASE_TIMEOUT) as phase:
                    async with trio.open_nursery() as tn:
                        for uid, (_sub, handle, portal) in children.items():
                            if hard_kill:
                                self._terminate(uid, handle)
                                terminated[uid] = handle
                                continue
                            tn.start_soon(
                                self._cancel_child, uid, handle, portal, terminated,
                            )
                # a child that entered a REPL meanwhile is asked again
                # once it is done, not terminated
                if not (phase.cancelled_caught and await _debug_hooks.repl_in_use()):
                    break
            if phase.cancelled_caught:
                for uid, (_sub, handle, _portal) in children.items():
                    if handle.alive():
                        logger.warning(f'Actor {uid!r} did not cancel in time; terminating')
                        self._terminate(uid, handle)
                        terminated[uid] = handle
            await _kill_if_still_alive(terminated)

    async def _cancel_child(
        self,
        uid: tuple[str, str],
        handle: Any,
        portal: Portal|None,
        terminated: dict[tuple[str, str], Any],
    ) -> None:
        if portal is None:
            event = self._portal_events.get(uid)
            if event is not None:
                await event.wait()
            entry = self._children.get(uid)
            portal = entry[2] if entry else None
            if portal is None:
                return
        try:
            # a child that received the request may take the rest of the
            # phase to finish: it cancels its own subtree first
            acked = await portal._cancel_actor_received(portal.cancel_timeout)
        except ActorTooSlowError:
            if await _debug_hooks.repl_in_use():
                # busy in a REPL, not stuck: `cancel()` asks again after it
                return
            logger.warning(f'Actor {uid!r} did not acknowledge cancel; terminating')
            self._terminate(uid, handle)
            terminated[uid] = handle
            return
        if not acked:
            # its channel is gone, so the request never reached it: one
            # that does not exit by itself would keep the nursery open
            with trio.move_on_after(portal.cancel_timeout):
                await handle.wait()
            if handle.alive():
                logger.warning(f'Actor {uid!r} is unreachable over IPC; terminating')
                self._terminate(uid, handle)
                terminated[uid] = handle

    def _terminate(self, uid: tuple[str, str], handle: Any) -> None:
        if handle.alive():
            # its end from now on is ours, not a failure
            self._ended_by_us.add(uid)
        handle.terminate()

    def __repr__(self) -> str:
        return f'<ActorNursery of {self._actor.name!r} children={len(self._children)}>'


async def _kill_if_still_alive(terminated: dict[tuple[str, str], Any]) -> None:
    '''
    The last rung of the teardown ladder: a child that survives being
    terminated (e.g. ignores SIGTERM while blocked) would otherwise keep
    its nursery open forever. Polls, since its spawn task waits on it too.
    '''
    # each handle says how long its kind needs to die after terminate()
    grace = max((handle.reap_grace for handle in terminated.values()), default=0)
    with trio.move_on_after(grace):
        while any(handle.alive() for handle in terminated.values()):
            await trio.sleep(0.05)
    for uid, handle in terminated.items():
        if handle.alive():
            logger.warning(f'Actor {uid!r} survived terminate(); killing it')
            handle.kill()


def _cancelled_for_child_failure(an: ActorNursery, err: BaseException) -> bool:
    '''Whether the body only ended because a child failed (not an error).'''
    return (
        an._body_scope is not None
        and an._body_scope.cancel_called
        and bool(an.errors)
        and (isinstance(err, trio.Cancelled) or bool(is_multi_cancelled(err)))
    )


def _raise_errors(errors: dict[tuple[str, str], BaseException]) -> None:
    if not errors:
        return
    # the body may re-raise a child's error it got from `wait_for_result()`
    errs = list({id(err): err for err in errors.values()}.values())
    if len(errs) == 1:
        raise errs[0]
    raise BaseExceptionGroup('tractor.ActorNursery errored with', errs)


@asynccontextmanager
async def _open_and_supervise_one_cancels_all_nursery(
    actor: Actor,
    start_method: str,
) -> AsyncIterator[ActorNursery]:
    errors: dict[tuple[str, str], BaseException] = {}
    an: ActorNursery|None = None
    try:
        # daemon spawn tasks live in the outer nursery, `run_in_actor`
        # ones in the inner one, which is joined first
        async with trio.open_nursery() as da_nursery:
            try:
                async with trio.open_nursery() as ria_nursery:
                    an = ActorNursery(
                        actor, ria_nursery, da_nursery, errors, start_method,
                    )
                    with trio.CancelScope() as an._body_scope:
                        try:
                            yield an
                        except BaseException as body_err:
                            an._join_procs.set()
                            if not _cancelled_for_child_failure(an, body_err):
                                errors[actor.aid.uid] = body_err
                            await an.cancel()
                            raise
                    an._body_exited()
            finally:
                if errors and an is not None and not an._cancel_called:
                    await an.cancel()
    except BaseException as nursery_err:
        if not errors:
            raise
        # the recorded errors say what went wrong; the group trio built
        # around them (and their cancellations) adds nothing
        _raise_errors(errors)
        raise nursery_err
    finally:
        if an is not None:
            an.exited.set()
    _raise_errors(errors)


@asynccontextmanager
async def open_nursery(
    *,
    hide_tb: bool = True,
    start_method: str|None = None,
    **kwargs,
) -> AsyncIterator[ActorNursery]:
    '''
    Open an actor nursery. Without a running runtime (in the main
    process) a root actor is started first and torn down after the
    nursery; `kwargs` then go to `open_root_actor()`.

    `start_method` selects the spawn backend of every child this nursery
    starts, wherever it is opened (root, subactor, nested nursery); by
    default, the actor's own: the root's `start_method`, in a subactor
    the backend it was spawned with (`try_set_start_method()` changes
    it). An unknown key raises `ValueError`, one that cannot run here
    `RuntimeError`, both before anything is spawned.
    '''
    actor = _state.current_actor(err_on_no_runtime=False)
    if actor is None and _state.is_main_process():
        async with _root_opener(
            hide_tb=hide_tb, start_method=start_method, **kwargs,
        ) as actor:
            # the root took `start_method` (or `$TRACTOR_SPAWN_METHOD`,
            # which overrides it) as its default
            backend = _start_method_for(None)
            async with _open_and_supervise_one_cancels_all_nursery(
                actor, backend,
            ) as an:
                an._implicit_runtime_started = True
                yield an
        return
    if actor is None:
        actor = _state.current_actor()
    backend = _start_method_for(start_method)
    async with _open_and_supervise_one_cancels_all_nursery(actor, backend) as an:
        yield an
