'''
The registrar: an actor that also keeps the table of which actor names
listen on which addresses, served to peers in the `'self'` RPC namespace.

Every peer is authenticated before it can call in (see `tractor.ipc._auth`);
on top of that an actor may only register or unregister itself, and an
address is only deleted once nothing answers on it, so one peer cannot
make the others' lookups fail or lead them elsewhere by mistake.
'''
from __future__ import annotations

from collections import defaultdict
from typing import Any

import trio

from tractor import log
from tractor.ipc import Channel
from tractor.runtime._runtime import Actor
from tractor.runtime._state import current_ipc_ctx

logger = log.get_logger()

UnwrappedAddr = tuple

# how long `delete_addr` tries to reach an address before calling it dead
LIVENESS_PROBE_TIMEOUT: float = 1.0


def _caller_uid() -> tuple[str, str]|None:
    '''The uid of the peer whose request we serve; None for a local call.'''
    ctx = current_ipc_ctx()
    return ctx.chan.aid.uid if ctx is not None else None


def _check_own_uid(uid: tuple[str, str], verb: str) -> None:
    caller = _caller_uid()
    if caller is not None and caller != uid:
        raise PermissionError(
            f'Actor {caller!r} may only {verb} itself, not {uid!r}'
        )


async def _answers(addr: Any) -> bool:
    '''Whether something still accepts connections at `addr`.'''
    with trio.move_on_after(LIVENESS_PROBE_TIMEOUT):
        try:
            chan = await Channel.from_addr(addr)
        except (OSError, ValueError):
            return False
        await chan.aclose()
        return True
    # neither accepted nor refused: not provably dead
    return True


class Registrar(Actor):
    '''An `Actor` that is the registry of a tree (legacy name: arbiter).'''
    is_registrar: bool = True
    _self_rpc_methods = Actor._self_rpc_methods | {
        'register_actor',
        'register_actor_addrs',
        'unregister_actor',
        'find_actor',
        'wait_for_actor',
        'get_registry',
        'delete_addr',
    }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._registry: dict[tuple[str, str], list[UnwrappedAddr]] = {}
        self._waiters: defaultdict[str, list[trio.Event]] = defaultdict(list)

    async def register_actor(
        self,
        uid: tuple[str, str]|list,
        addr: Any,
    ) -> None:
        uid = tuple(uid)
        addr = tuple(addr)
        _check_own_uid(uid, 'register')
        # an address belongs to one actor: a newcomer evicts a stale owner
        for other, addrs in list(self._registry.items()):
            if other != uid and addr in addrs:
                addrs.remove(addr)
                if not addrs:
                    del self._registry[other]
        addrs = self._registry.setdefault(uid, [])
        if addr not in addrs:
            addrs.append(addr)
        for event in self._waiters.pop(uid[0], []):
            event.set()

    async def register_actor_addrs(
        self,
        uid: tuple[str, str]|list,
        addrs: list[Any],
    ) -> None:
        '''
        `register_actor()` each of `addrs`; then, if `uid` is our child
        registering over our channel to it, let our requests to it go
        (see `runtime._runtime.registers_via_parent()`).
        '''
        uid = tuple(uid)
        # also with no addresses: only a child may end its own hold
        _check_own_uid(uid, 'register')
        for addr in addrs:
            await self.register_actor(uid, addr)
        self._release_requests(uid)

    async def unregister_actor(self, uid: tuple[str, str]|list) -> None:
        uid = tuple(uid)
        _check_own_uid(uid, 'unregister')
        if self._registry.pop(uid, None) is None:
            logger.warning(f'Unregistering unknown actor {uid!r}')

    async def find_actor(self, name: str) -> list[UnwrappedAddr]|None:
        for uid, addrs in self._registry.items():
            if name in uid:
                return list(addrs)
        return None

    async def wait_for_actor(self, name: str) -> list[UnwrappedAddr]:
        while True:
            found = [
                addr
                for uid, addrs in self._registry.items() if uid[0] == name
                for addr in addrs
            ]
            if found:
                return found
            event = trio.Event()
            self._waiters[name].append(event)
            await event.wait()

    async def get_registry(self) -> dict[str, list[UnwrappedAddr]]:
        return {
            f'{name}.{uuid}': list(addrs)
            for (name, uuid), addrs in self._registry.items()
        }

    async def delete_addr(self, addr: Any) -> tuple[str, str]|None:
        '''
        Forget `addr` (a caller found it stale) and return whose it was; an
        address that still accepts connections is kept (returns None).
        '''
        addr = tuple(addr)
        if not any(addr in addrs for addrs in self._registry.values()):
            return None
        if await _answers(addr):
            logger.warning(
                f'Not deleting registered address {addr!r} at the request '
                f'of {_caller_uid()!r}: it still accepts connections'
            )
            return None
        for uid, addrs in list(self._registry.items()):
            if addr in addrs:
                addrs.remove(addr)
                if not addrs:
                    del self._registry[uid]
                return uid
        return None


Arbiter = Registrar
