'''
Finding actors by name through the registrar(s), and electing a registrar.
'''
from __future__ import annotations

import os
import uuid
from contextlib import (
    AsyncExitStack,
    asynccontextmanager,
)
from typing import (
    Any,
    AsyncIterator,
)

import trio

from tractor import log
from tractor._exceptions import (
    AuthenticationFailed,
    TransportClosed,
)
from tractor.ipc import (
    Channel,
    _connect_chan,
)
from tractor.ipc._addr import (
    default_lo_addrs,
    wrap_address,
)
from tractor.ipc._uds import UDSAddress
from tractor.msg.types import Aid
from tractor.runtime import _state
from tractor.trionics._eg import collapse_eg
from tractor.runtime._portal import (
    LocalPortal,
    Portal,
    open_portal,
)

logger = log.get_logger()


async def _probe_registry(
    addr: Any,
    timeout: float = 3,
    attempt_timeout: float = 1,
    max_attempts: int = 3,
    retry_delay: float = .05,
    close_timeout: float = .2,
) -> str:
    '''
    Is a registrar listening at `addr`? Returns `'registrar'`,
    `'occupied'` (something answers, but not as a registrar) or `'absent'`;
    raises `AuthenticationFailed` if an actor there holds another secret.
    '''
    addr = wrap_address(addr)
    probe_aid = Aid(
        name='registry-probe',
        uuid=str(uuid.uuid4()),
        pid=os.getpid(),
        is_probe=True,
    )
    connected = False
    with trio.move_on_after(timeout):
        for attempt in range(1, max_attempts + 1):
            try:
                chan = await Channel.from_addr(addr)
            except OSError:
                return 'absent'
            connected = True
            try:
                peer = await chan._do_handshake(probe_aid, timeout=attempt_timeout)
                return 'occupied' if peer.is_registrar is False else 'registrar'
            except AuthenticationFailed as err:
                raise AuthenticationFailed(
                    f'Can not use the registry address {addr!r}: {err}',
                    loglevel=err.loglevel,
                    src_exc=err.src_exc,
                ) from err
            except TransportClosed:
                pass
            finally:
                with trio.move_on_after(close_timeout) as cs:
                    cs.shield = True
                    await chan.aclose()
            await trio.sleep(retry_delay * attempt)
    return 'occupied' if connected else 'absent'


async def _probe_registry_addrs(
    addrs: list[Any],
    timeout: float = 3,
) -> tuple[list[Any], list[Any]]:
    '''Probe all `addrs` at once: `(registrar_addrs, occupied_addrs)`.'''
    results: dict[int, str] = {}

    async def _probe(idx: int, addr: Any) -> None:
        results[idx] = await _probe_registry(addr, timeout=timeout)

    async with collapse_eg(), trio.open_nursery() as tn:
        for idx, addr in enumerate(addrs):
            tn.start_soon(_probe, idx, addr)
    registrars = [addr for idx, addr in enumerate(addrs) if results[idx] == 'registrar']
    occupied = [addr for idx, addr in enumerate(addrs) if results[idx] == 'occupied']
    return registrars, occupied


def _registry_addrs(registry_addrs: list[Any]|None) -> list[Any]:
    if registry_addrs:
        return list(registry_addrs)
    actor = _state.current_actor()
    return (
        list(actor.reg_addrs)
        or list(_state._runtime_vars['_registry_addrs'])
        or default_lo_addrs(_state.current_ipc_protos())
    )


@asynccontextmanager
async def get_registry(
    addr: Any = None,
) -> AsyncIterator[Portal|LocalPortal]:
    '''A portal to the registrar at `addr` (local when that is us).'''
    actor = _state.current_actor()
    addr = wrap_address(addr or _registry_addrs(None)[0]).unwrap()
    if actor.is_registrar and addr in actor.accept_addrs:
        yield LocalPortal(actor, None)
        return
    async with _connect_chan(addr) as chan:
        async with open_portal(chan) as portal:
            yield portal


def _pick_addr(addrs: list[Any]) -> Any:
    '''
    Prefer UDS, then loopback TCP, then other TCP; the most recently
    registered address wins within a tier.
    '''
    def tier(addr: Any) -> int:
        wrapped = wrap_address(addr)
        if isinstance(wrapped, UDSAddress):
            return 0
        return 1 if wrapped.host.startswith('127.') or wrapped.host == '::1' else 2

    best = None
    for addr in addrs:
        if best is None or tier(addr) <= tier(best):
            best = addr
    return best


@asynccontextmanager
async def query_actor(
    name: str,
    regaddr: Any = None,
) -> AsyncIterator[tuple[Any, Portal|LocalPortal]]:
    '''The preferred registered address of `name` (or None), and the registrar's portal.'''
    actor = _state.current_actor()
    if actor.is_registrar and name == 'registrar':
        raise RuntimeError('The registrar can not query the registry for itself')
    async with get_registry(regaddr) as reg_portal:
        addrs = await reg_portal.run_from_ns('self', 'find_actor', name=name)
        yield (_pick_addr(addrs) if addrs else None), reg_portal


@asynccontextmanager
async def _portal_to(addr: Any) -> AsyncIterator[Portal]:
    async with _connect_chan(addr) as chan:
        async with open_portal(chan) as portal:
            yield portal


@asynccontextmanager
async def find_actor(
    name: str,
    registry_addrs: list[Any]|None = None,
    enable_transports: list[str]|None = None,
    only_first: bool = True,
    raise_on_none: bool = False,
) -> AsyncIterator[Portal|list[Portal]|None]:
    '''
    Connect to an actor registered as `name`: a portal (the first found),
    a list of portals (`only_first=False`) or `None` if nobody is.
    '''
    # connect while looking up, so a found actor costs one connection; a
    # registered address that refuses connections is stale: drop it
    chans: list[Channel] = []
    for reg_addr in _registry_addrs(registry_addrs):
        async with query_actor(name, reg_addr) as (addr, reg_portal):
            if addr is None:
                continue
            try:
                chans.append(await Channel.from_addr(addr))
            except OSError:
                await reg_portal.run_from_ns('self', 'delete_addr', addr=addr)
                continue
            if only_first:
                break
    if not chans:
        if raise_on_none:
            raise RuntimeError(f'No actor named {name!r} is registered')
        yield None if only_first else []
        return
    async with AsyncExitStack() as stack:
        portals: list[Portal] = []
        for chan in chans:
            stack.push_async_callback(chan.aclose)  # shielded inside
        for chan in chans:
            portals.append(await stack.enter_async_context(open_portal(chan)))
        yield portals[0] if only_first else portals


@asynccontextmanager
async def wait_for_actor(
    name: str,
    registry_addr: Any = None,
) -> AsyncIterator[Portal]:
    '''Block until an actor named `name` registers, then yield a portal to it.'''
    async with get_registry(registry_addr) as reg_portal:
        addrs = await reg_portal.run_from_ns('self', 'wait_for_actor', name=name)
    async with _portal_to(_pick_addr(addrs)) as portal:
        yield portal


@asynccontextmanager
async def get_root(**kwargs) -> AsyncIterator[Portal]:
    '''A portal to the tree's root actor, over a new connection.'''
    async with _portal_to(_state._runtime_vars['_root_mailbox']) as portal:
        yield portal
