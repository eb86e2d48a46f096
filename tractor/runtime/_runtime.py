'''
The `Actor`: one per process (or sub-interpreter), with its IPC server,
its table of running remote tasks and open dialogs (its life from boot
to teardown, `async_main()`, is in `_boot`).
'''
from __future__ import annotations

import os
import sys
import uuid
import warnings
from contextlib import ExitStack
from typing import (
    Any,
    Callable,
)

import trio

from tractor import log
from tractor._code_load import (
    import_module,
    replay_parent_main,
)
from tractor._context import Context
from tractor._exceptions import (
    InternalError,
    TransportClosed,
)
from tractor.ipc import (
    Channel,
    IPCServer,
    _connect_chan,
)
from tractor.ipc._addr import (
    Address,
    wrap_address,
)
from tractor.msg.types import (
    Aid,
    SpawnSpec,
    Start,
    StartAck,
)

from . import (
    _debug_hooks,
    _state,
)
from ._portal import (
    Portal,
    open_portal,
)
from ._rpc import (
    RpcTask,
    process_messages,
)

logger = log.get_logger()

# bounds on teardown steps that talk to other actors
UNREGISTER_TIMEOUT: float = 0.5
PEER_DRAIN_TIMEOUT: float = 3.0
TASK_CANCEL_ACK_TIMEOUT: float = 0.616

# run with the actor early in its boot, once its runtime vars are known;
# the helper layers above the core install theirs (`tractor.devx`), and
# can register undo callbacks on `actor.lifetime_stack`
boot_hooks: list[Callable[[Actor], None]] = []


class Actor:
    '''
    An actor: a runtime with an identity, an IPC server, and the remote
    tasks and dialogs it serves.

    `spawn_method` says which spawn backend started this actor
    (`'trio'`, `'mp_spawn'`, `'mp_forkserver'` or `'subint'`); for the
    root, which no backend started, it is the root's default backend
    (its `start_method`, else the process default when it opened).
    '''
    is_registrar: bool = False
    msg_buffer_size: int = 2**6
    # runtime methods a peer may call in the `'self'` namespace
    _self_rpc_methods: frozenset[str] = frozenset({'cancel', '_cancel_task'})
    # requests that never wait for anything (see `start_remote_task()`)
    _cancel_methods: frozenset[str] = frozenset({'cancel', '_cancel_task'})

    def __init__(
        self,
        name: str,
        uuid: str|None = None,
        *,
        enable_modules: list[str]|dict[str, str]|None = None,
        loglevel: str|None = None,
        registry_addrs: list[Any]|None = None,
        spawn_method: str|None = None,
    ) -> None:
        self.name = name
        self._uuid = uuid or _mk_uuid()
        self.aid = Aid(
            name=name,
            uuid=self._uuid,
            pid=os.getpid(),
            is_registrar=self.is_registrar,
        )
        self.loglevel = loglevel
        self.spawn_method = spawn_method
        if isinstance(enable_modules, dict):
            self.enable_modules: dict[str, str] = dict(enable_modules)
        else:
            self.enable_modules = {mod: '' for mod in (enable_modules or [])}
        self._mods: dict[str, Any] = {}
        self.reg_addrs: list[Any] = [
            wrap_address(addr).unwrap() for addr in (registry_addrs or [])
        ]
        self._parent_main_data: dict[str, str] = {}
        self._parent_chan: Channel|None = None
        self._spawn_spec: SpawnSpec|None = None
        self._infected_aio: bool = False

        self.ipc_server: IPCServer|None = None
        self._rpc_tasks: dict[tuple[Channel, str], RpcTask] = {}
        self._ongoing_rpc_tasks = trio.Event()
        self._ongoing_rpc_tasks.set()
        self._contexts: dict[tuple[tuple[str, str], str], Context] = {}
        self._actoruid2nursery: dict[tuple[str, str], Any] = {}
        self.lifetime_stack = ExitStack()

        self._root_tn: trio.Nursery|None = None
        self._service_tn: trio.Nursery|None = None
        self._parent_loop_cs: trio.CancelScope|None = None
        self._cancel_called: bool = False
        self._cancel_called_by: tuple[str, str]|None = None
        # cancelled because the parent's channel ended unasked (a child
        # exits saying so, see `spawn._entry`)
        self._lost_parent: bool = False
        self._cancel_complete = trio.Event()
        self._registered_at: list[Any] = []
        # children of ours registering with us over our channel to them
        # (`registers_via_parent()`), not done yet: our requests to them
        # wait for it (`start_remote_task()`)
        self._booting: dict[tuple[str, str], trio.Event] = {}
        self._trio_token: trio.lowlevel.TrioToken|None = None

    # -- identity --
    @property
    def uid(self) -> tuple[str, str]:
        warnings.warn(
            '`Actor.uid` is deprecated; use `Actor.aid.uid`',
            DeprecationWarning,
            stacklevel=2,
        )
        return self.aid.uid

    @property
    def pid(self) -> int:
        return self.aid.pid

    @property
    def is_arbiter(self) -> bool:
        warnings.warn(
            '`Actor.is_arbiter` is deprecated; use `Actor.is_registrar`',
            DeprecationWarning,
            stacklevel=2,
        )
        return self.is_registrar

    @property
    def is_root(self) -> bool:
        return _state.is_root_process()

    def is_infected_aio(self) -> bool:
        return self._infected_aio

    @property
    def registry_addrs(self) -> list[Address]:
        return [wrap_address(addr) for addr in self.reg_addrs]

    @property
    def accept_addrs(self) -> list[Any]:
        if self.ipc_server is None:
            return []
        return [addr.unwrap() for addr in self.ipc_server.accept_addrs]

    @property
    def accept_addr(self) -> Any:
        addrs = self.accept_addrs
        return addrs[0] if addrs else None

    @property
    def cancel_called(self) -> bool:
        return self._cancel_called

    @property
    def cancel_caller(self) -> tuple[str, str]|None:
        return self._cancel_called_by

    @property
    def cancel_complete(self) -> bool:
        return self._cancel_complete.is_set()

    def __repr__(self) -> str:
        return f'<{type(self).__name__} {self.aid.reprol()}>'

    @property
    def repr_state(self) -> str:
        '''`'running'`, `'cancelling'` (asked to, by `cancel_caller`) or `'cancelled'`.'''
        if self.cancel_complete:
            return 'cancelled'
        if self._cancel_called:
            return 'cancelling'
        return 'running'

    def pformat(self, privates: bool = False) -> str:
        '''
        A multi-line description of this actor for logs and debugging:
        identity, state, addresses, and what it is serving; `privates`
        adds its open dialogs and RPC tasks one per line.
        '''
        server = self.ipc_server
        peers = len(server._peers) if server is not None else 0
        lines = [
            f'<{type(self).__name__}(',
            f'  name={self.name!r}, uuid={self._uuid!r}, pid={self.pid},',
            f'  state={self.repr_state!r}'
            + (f', cancel_caller={self._cancel_called_by!r}' if self._cancel_called else '')
            + ',',
            f'  spawn_method={self.spawn_method!r}, is_root={self.is_root},'
            f' is_registrar={self.is_registrar}, infected_aio={self._infected_aio},',
            f'  accept_addrs={self.accept_addrs!r},',
            f'  reg_addrs={self.reg_addrs!r},',
            f'  enable_modules={list(self.enable_modules)!r},',
            f'  peers={peers}, rpc_tasks={len(self._rpc_tasks)},'
            f' contexts={len(self._contexts)},',
        ]
        if privates:
            lines += [f'    rpc task {task.ctx!r}' for task in self._rpc_tasks.values()]
            lines += [f'    dialog {ctx!r}' for ctx in self._contexts.values()]
        lines.append(')>')
        return '\n'.join(lines)

    # -- modules --
    def load_modules(self) -> None:
        '''Import the parent's `__main__` (if shipped) and every enabled module.'''
        main_path = self._parent_main_data.get('init_main_from_path')
        main_name = self._parent_main_data.get('init_main_from_name')
        # a backend that re-imports the parent's main itself (the
        # multiprocessing spawn start method) leaves it as `__mp_main__`
        replayed = getattr(sys.modules.get('__main__'), '__name__', None) == '__mp_main__'
        if (main_path or main_name) and not replayed:
            replay_parent_main(main_path, main_name)
        for modpath, filepath in self.enable_modules.items():
            if modpath in ('__main__', '__mp_main__'):
                main = sys.modules['__main__']
                self._mods['__main__'] = self._mods['__mp_main__'] = main
                continue
            self._mods[modpath] = import_module(modpath, filepath)

    # -- calling other actors --
    async def start_remote_task(
        self,
        chan: Channel,
        ns: str,
        func: str,
        kwargs: dict[str, Any],
        portal: Portal|None = None,
        msg_buffer_size: int|None = None,
        allow_overruns: bool = False,
    ) -> Context:
        '''
        Ask the peer on `chan` to start `ns:func(**kwargs)`; returns the
        caller-side `Context` once the peer acknowledged the task.
        '''
        cid = str(uuid.uuid4())
        ctx = self.get_context(
            chan,
            cid,
            nsf=f'{ns}:{func}',
            msg_buffer_size=msg_buffer_size,
            allow_overruns=allow_overruns,
        )
        ctx.portal = portal
        key = (chan.aid.uid, cid)
        try:
            booting = self._booting.get(chan.aid.uid)
            send = True
            if (
                booting is not None
                and not (ns == 'self' and func in self._cancel_methods)
                and not chan.closed
            ):
                # a child of ours still registering with us: nobody may hear
                # from it before it can be looked up. Gone meanwhile: our
                # dialog learnt how (as it would have after sending), unless
                # its channel's loop had ended before it existed
                send = await _registered_or_gone(booting, chan) or ctx._chan_lost is None
            if send:
                await chan.send(
                    Start(cid=cid, ns=ns, func=func, kwargs=kwargs, uid=self.aid.uid),
                    schedule=False,
                )
            first = await ctx._recv_msg()
            if not isinstance(first, StartAck):
                ctx._raise_or_pld(first)
                raise InternalError(
                    f'Expected `StartAck` for {ctx!r}, got {type(first).__name__}'
                )
        except BaseException:
            self._contexts.pop(key, None)
            raise
        ctx._functype = first.functype
        return ctx

    def get_context(
        self,
        chan: Channel,
        cid: str,
        nsf: Any = '',
        msg_buffer_size: int|None = None,
        allow_overruns: bool = False,
    ) -> Context:
        '''
        The dialog `cid` with the peer on `chan`: the open one, else a new
        caller-side `Context` registered so that the peer's messages for
        `cid` reach it. `nsf` names the remote function (`'mod:func'`).
        Asking for overruns on an open dialog allows them from then on.
        '''
        key = (chan.aid.uid, cid)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = Context(
                chan,
                cid,
                side='parent',
                msg_buffer_size=msg_buffer_size or self.msg_buffer_size,
                nsf=str(nsf),
                allow_overruns=allow_overruns,
            )
        elif allow_overruns:
            ctx._allow_overruns = True
        return ctx

    async def cancel_remote_task(
        self,
        ctx: Context,
        timeout: float = TASK_CANCEL_ACK_TIMEOUT,
    ) -> bool:
        '''Ask the peer to cancel the task behind `ctx` (bounded, shielded).'''
        ctx._note_cancel_request()
        if not ctx.chan.connected():
            return False
        with trio.CancelScope(shield=True) as cs:
            cs.deadline = trio.current_time() + timeout
            try:
                return await Portal(ctx.chan)._run(
                    'self', '_cancel_task', {'cid': ctx.cid},
                    cancel_on_abort=False,
                )
            except TransportClosed:
                return False
        return False

    def get_parent(self) -> Portal:
        if self._parent_chan is None:
            raise RuntimeError(f'{self!r} has no parent')
        return Portal(self._parent_chan)

    # -- cancellation --
    async def _cancel_task(
        self,
        cid: str,
        parent_chan: Channel,
        requesting_aid: Aid|None = None,
    ) -> bool:
        '''Cancel the task `parent_chan` started as `cid`, and wait for it.'''
        task = self._rpc_tasks.get((parent_chan, cid))
        if task is None:
            return True
        if task.ctx._canceller is None and requesting_aid is not None:
            task.ctx._canceller = requesting_aid.uid
        task.ctx._scope.cancel()
        await task.done.wait()
        return True

    async def cancel(self, req_chan: Channel|None = None) -> bool:
        '''
        Cancel this actor's runtime: every remote task, the IPC server, the
        parent channel's loop and finally the service nursery.
        '''
        if not self._cancel_called:
            self._cancel_called = True
            self._cancel_called_by = (
                req_chan.aid.uid if req_chan is not None and req_chan.aid
                else self.aid.uid
            )
        await self._cancel_rpc_tasks(self._cancel_called_by)
        with trio.CancelScope(shield=True):
            if self.ipc_server is not None:
                self.ipc_server.cancel()
                await self.ipc_server.wait_for_shutdown()
        if self._parent_loop_cs is not None:
            self._parent_loop_cs.cancel()
        if self._service_tn is not None:
            self._service_tn.cancel_scope.cancel()
        self._cancel_complete.set()
        return True

    async def cancel_rpc_tasks(
        self,
        req_aid: Aid|None = None,
        parent_chan: Channel|None = None,
    ) -> None:
        '''
        Cancel the RPC tasks this actor runs (only those started over
        `parent_chan`, if given) and wait until they have all ended.
        `req_aid` is who asked (their dialogs report it as the canceller;
        default: this actor). A task cancelling its own actor is not waited
        for, it would wait for itself.
        '''
        await self._cancel_rpc_tasks((req_aid or self.aid).uid, parent_chan)

    async def _cancel_rpc_tasks(
        self,
        requester: tuple[str, str],
        parent_chan: Channel|None = None,
    ) -> None:
        me = trio.lowlevel.current_task()
        with trio.CancelScope(shield=True):
            while others := [
                task for (chan, _cid), task in self._rpc_tasks.items()
                if task.task is not me
                and (parent_chan is None or chan is parent_chan)
            ]:
                for task in others:
                    if task.ctx._canceller is None:
                        task.ctx._canceller = requester
                    task.ctx._scope.cancel()
                await others[0].done.wait()

    def cancel_soon(self) -> None:
        '''Schedule a full self-cancel, ending the root nursery after it.'''
        async def _cancel_then_end() -> None:
            await self.cancel(None)
            if self._root_tn is not None:
                self._root_tn.cancel_scope.cancel()

        if self._root_tn is not None:
            self._root_tn.start_soon(_cancel_then_end, name='cancel_soon')

    # -- serving peers --
    async def _serve_peer(self, chan: Channel) -> None:
        '''Called by the IPC server for every connected peer.'''
        graceful = False
        try:
            graceful = await process_messages(self, chan)
        finally:
            if (hooks := _debug_hooks.installed) is not None:
                hooks.peer_disconnected(chan, graceful)  # the root's tty lock

    async def _serve_parent(
        self,
        chan: Channel,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        '''
        Serve the channel to our parent. If it is lost without our parent
        having asked us to cancel, nobody supervises us any more: cancel.
        '''
        with trio.CancelScope() as self._parent_loop_cs:
            task_status.started()
            await process_messages(self, chan)
            if not self._cancel_called:
                logger.warning(f'{self!r} lost its parent; cancelling itself')
                self._lost_parent = True
                self.cancel_soon()

    # -- registry --
    async def _registrar_call(self, reg_addr: Any, method: str, **kwargs) -> Any:
        '''Run a registrar method at `reg_addr` (directly when that is us).'''
        if self.is_registrar and reg_addr in self.accept_addrs:
            return await getattr(self, method)(**kwargs)
        async with _connect_to(reg_addr) as chan:
            async with open_portal(chan) as portal:
                return await portal.run_from_ns('self', method, **kwargs)

    async def _register(self, parent: Portal|None = None, parent_addr: Any = None) -> None:
        '''
        Register every address we accept on with every registrar: with the
        one at `parent_addr` (our parent) over `parent`, its portal, in one
        call, with the others over a connection per call.
        '''
        at_parent = wrap_address(parent_addr) if parent is not None else None
        for reg_addr in self.reg_addrs:
            if at_parent is not None and wrap_address(reg_addr) == at_parent:
                await parent.run_from_ns(
                    'self', 'register_actor_addrs',
                    uid=self.aid.uid, addrs=list(self.accept_addrs),
                )
            else:
                for addr in self.accept_addrs:
                    await self._registrar_call(
                        reg_addr, 'register_actor', uid=self.aid.uid, addr=addr,
                    )
            self._registered_at.append(reg_addr)

    def _hold_requests_until_registered(self, uid: tuple[str, str]) -> None:
        '''
        Our child `uid` is about to register with us over our channel to
        it: hold our requests to it until it has (`_release_requests()`).
        '''
        self._booting[uid] = trio.Event()

    def _release_requests(self, uid: tuple[str, str]) -> None:
        '''Our child `uid` registered with us (or is gone): let requests to it go.'''
        event = self._booting.pop(uid, None)
        if event is not None:
            event.set()

    async def _unregister(self) -> None:
        '''Best effort, bounded: a registrar that is gone is not an error.'''
        with trio.CancelScope(shield=True):
            for reg_addr in self._registered_at:
                if self.is_registrar and reg_addr in self.accept_addrs:
                    continue
                with trio.move_on_after(UNREGISTER_TIMEOUT):
                    try:
                        await self._registrar_call(
                            reg_addr, 'unregister_actor', uid=self.aid.uid,
                        )
                    except (OSError, TransportClosed) as err:
                        logger.runtime(f'Could not unregister at {reg_addr}: {err}')
            self._registered_at.clear()


def _mk_uuid() -> str:
    return str(uuid.uuid4())


def registers_via_parent(
    parent_is_registrar: bool,
    parent_addr: Any,
    reg_addrs: list[Any],
) -> bool:
    '''
    Whether a child registers over its channel to its parent, saving a
    connection and its handshake: when the parent is the registrar at the
    address the child reached it on. Both ends decide it alike, from what
    the spawn spec carries. The child then serves that channel before it
    has registered (the registration's reply comes through it), so the
    parent holds its own requests to the child until it has registered:
    as before, nobody hears from a child before it can be looked up.
    '''
    if not parent_is_registrar or parent_addr is None:
        return False
    parent = wrap_address(parent_addr)
    return any(wrap_address(addr) == parent for addr in reg_addrs)


async def _registered_or_gone(registered: trio.Event, chan: Channel) -> bool:
    '''Until `registered` is set (True) or `chan` closed first (False).'''
    async with trio.open_nursery() as tn:
        async def _closed() -> None:
            await chan.wait_closed()
            tn.cancel_scope.cancel()

        tn.start_soon(_closed)
        await registered.wait()
        tn.cancel_scope.cancel()
        return True
    return False


def _connect_to(addr: Any):
    return _connect_chan(addr, close_timeout=0.5)
