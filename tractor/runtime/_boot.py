'''
`async_main()`: an actor's runtime from boot to teardown. A child
connects back to its parent, takes its spawn spec, listens, registers
and serves; a root skips the parent; both end by cancelling what runs
and unregistering.
'''
from __future__ import annotations

from typing import Any

import trio

from tractor import log
from tractor._exceptions import (
    InternalError,
    TransportClosed,
    pack_error,
)
from tractor.ipc import (
    Channel,
    IPCServer,
)
from tractor.ipc._addr import (
    Address,
    get_address_cls,
    wrap_address,
)
from tractor.msg.types import SpawnSpec
from tractor.trionics._eg import (
    collapse_exc,
    is_multi_cancelled,
)

from . import _state
from ._portal import Portal
from ._runtime import (
    PEER_DRAIN_TIMEOUT,
    Actor,
    boot_hooks,
    registers_via_parent,
)

logger = log.get_logger()


def _apply_spawn_spec(actor: Actor, spec: SpawnSpec) -> None:
    actor._spawn_spec = spec
    rtvs = dict(spec._runtime_vars)
    if bool(rtvs.get('_is_infected_aio')) != actor._infected_aio:
        raise InternalError(
            f'{actor!r} was spawned with `infect_asyncio='
            f'{bool(rtvs.get("_is_infected_aio"))}` but its trio '
            f'{"is" if actor._infected_aio else "is not"} an asyncio guest'
        )
    rtvs['_is_root'] = False
    # console logging set up like the parent's (and its `loglevel=` for us)
    log.apply_console_log_levels(rtvs.pop('_console_log_levels', None) or {})
    _state._runtime_vars.update(rtvs)
    actor.reg_addrs = [tuple(addr) for addr in spec.reg_addrs]
    actor.enable_modules = dict(spec.enable_modules)
    actor._parent_main_data = dict(spec._parent_main_data)


def _default_accept_addrs(actor: Actor) -> list[Address]:
    return [
        get_address_cls(proto).get_random(name=actor.name)
        for proto in _state._runtime_vars['_enable_tpts']
    ]


async def async_main(
    actor: Actor,
    accept_addrs: list[Any]|None = None,
    parent_addr: Any = None,
    *,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    '''
    Run `actor` until it is cancelled: connect to the parent (if any),
    start the IPC server, import the enabled modules, register with the
    registrars, then serve.
    '''
    actor._trio_token = trio.lowlevel.current_trio_token()
    # set by the asyncio host (`to_asyncio.run_as_asyncio_guest`) we run in
    actor._infected_aio = bool(_state._runtime_vars['_is_infected_aio'])
    parent_chan: Channel|None = None
    try:
        if parent_addr is not None:
            parent_chan = await Channel.from_addr(parent_addr)
            await parent_chan._do_handshake(actor.aid)
            spec = await parent_chan.recv()
            if not isinstance(spec, SpawnSpec):
                raise InternalError(
                    f'Expected a `SpawnSpec` from the parent, got {type(spec).__name__}'
                )
            _apply_spawn_spec(actor, spec)
            actor._parent_chan = parent_chan
            if spec.bind_addrs:
                accept_addrs = spec.bind_addrs

        for hook in boot_hooks:
            hook(actor)

        addrs = (
            [wrap_address(addr) for addr in accept_addrs]
            if accept_addrs else _default_accept_addrs(actor)
        )
        if not addrs:
            raise RuntimeError(f'{actor!r} has no address to listen on')

        async with trio.open_nursery() as root_tn:
            actor._root_tn = root_tn
            try:
                async with trio.open_nursery() as service_tn:
                    actor._service_tn = service_tn
                    actor.ipc_server = IPCServer(lambda: actor.aid, actor._serve_peer)
                    await service_tn.start(actor.ipc_server.serve, addrs)
                    actor.load_modules()
                    if parent_chan is not None and registers_via_parent(
                        parent_chan.aid.is_registrar, parent_addr, actor.reg_addrs,
                    ):
                        # our parent holds its requests until we registered
                        await root_tn.start(actor._serve_parent, parent_chan)
                        await actor._register(Portal(parent_chan), parent_addr)
                        task_status.started(actor.accept_addrs)
                    else:
                        await actor._register()
                        task_status.started(actor.accept_addrs)
                        if parent_chan is not None:
                            await root_tn.start(actor._serve_parent, parent_chan)
            finally:
                await actor._unregister()
                root_tn.cancel_scope.cancel()

    except BaseException as err:
        if (
            parent_chan is not None
            and not isinstance(err, (trio.Cancelled, KeyboardInterrupt))
            # our tasks' cancellation when `trio.run()` itself crashed (an
            # error out of a system task): not why we go; the exit says it
            and not is_multi_cancelled(err)
            and parent_chan.connected()
        ):
            # a runtime failure: tell the parent why we are going away
            with trio.CancelScope(shield=True) as cs:
                cs.deadline = trio.current_time() + 1
                try:
                    await parent_chan.send(
                        pack_error(collapse_exc(err), own_uid=actor.aid.uid)
                    )
                except TransportClosed:
                    pass
        raise

    finally:
        actor.lifetime_stack.close()
        if actor.ipc_server is not None:
            with trio.move_on_after(PEER_DRAIN_TIMEOUT) as cs:
                cs.shield = True
                await actor.ipc_server.wait_for_no_more_peers()
        if parent_chan is not None:
            await parent_chan.aclose()
        actor._cancel_complete.set()

