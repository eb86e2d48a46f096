'''
The registrar: an actor that also keeps the table of which actor names
listen on which addresses, served to peers in the `'self'` RPC namespace.
'''
from __future__ import annotations

from collections import defaultdict
from typing import Any

import trio

from tractor import log
from tractor.runtime._runtime import Actor

logger = log.get_logger()

UnwrappedAddr = tuple


class Registrar(Actor):
    '''An `Actor` that is the registry of a tree (legacy name: arbiter).'''
    is_registrar: bool = True
    _self_rpc_methods = Actor._self_rpc_methods | {
        'register_actor',
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

    async def unregister_actor(self, uid: tuple[str, str]|list) -> None:
        if self._registry.pop(tuple(uid), None) is None:
            logger.warning(f'Unregistering unknown actor {tuple(uid)!r}')

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
        addr = tuple(addr)
        for uid, addrs in list(self._registry.items()):
            if addr in addrs:
                addrs.remove(addr)
                if not addrs:
                    del self._registry[uid]
                return uid
        return None


Arbiter = Registrar
