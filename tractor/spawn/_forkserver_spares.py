'''
`mp_forkserver` spares: children forked and warmed ahead of a spawn,
which then hands one its actor.
'''
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import sys
from multiprocessing import reduction as _mp_reduction
from typing import Any

import trio

from tractor import log
from ._env import env_count
from tractor.ipc import _tcp
from ._forkserver import (
    _fork,
    _forkserver_info,
    _ready_forkserver,
    _server_id,
)
from ._mp_child import (
    MpProcessHandle,
    _child_kwargs,
    _mp_child_main,
)
from ._reason import ReasonPipe
from ._spawn import SpawnArgs

logger = log.get_logger()

# -- spares: forkserver children forked and warmed ahead of a spawn --
#
# After the fork, a child still spent ~5 ms before its actor's trio
# started: the exchange with the server and the fork itself, the
# multiprocessing bootstrap, and above all a private copy of every page
# of the server's heap it writes to on the way (~1000 pages by then,
# ~3 us each here). A spare does all that ahead: forked while nothing
# else is spawning, it bootstraps, runs trio once (`warm_trio()`), then
# waits on a pipe of its own for the actor it will be. A spawn that
# finds one hands it its arguments (the same ones, secret included,
# multiprocessing would have written on the data pipe only the child
# reads) and supervises it as if it had just been forked.
#
# Per trio run of a spawning actor: `SPARES` (`$TRACTOR_FORKSERVER_SPARES`,
# default 1, 0 turns them off) refilled `REFILL_DELAY` after the last
# spawn, so a spare never competes with children booting; torn down
# when the run ends (an unclaimed spare exits at the end of its pipe,
# which also happens if this process dies).

SPARES: int = env_count('TRACTOR_FORKSERVER_SPARES', 1)
REFILL_DELAY: float = 0.1
# bound on an unclaimed spare's exit at teardown (it may be warming up)
SPARE_STOP_BOUND: float = 1.0


def _spare_main(claim: Any, reason_writer: Any) -> None:
    '''
    A spare's `multiprocessing` target: warm up, wait to be claimed,
    then run the claiming spawn's actor exactly as `_mp_child_main()`.
    '''
    # idle, a Ctrl-C is its parent's to handle (it ends us by closing
    # the pipe); claimed, the actor's handler is the usual one
    sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        warm_trio()
        try:
            payload = claim.recv_bytes()
        except EOFError:
            # never claimed
            reason_writer.close()
            return
        finally:
            claim.close()
    finally:
        signal.signal(signal.SIGINT, sigint)
    name, cwd, sys_path, kwargs = _mp_reduction.ForkingPickler.loads(payload)
    # what multiprocessing would have set from the spawner's state then
    mp.current_process().name = name
    if os.getcwd() != cwd:
        os.chdir(cwd)
    sys.path[:] = sys_path
    _mp_child_main(**kwargs, reason_writer=reason_writer)


class _Spare:
    def __init__(
        self,
        proc: Any,
        reason: ReasonPipe,
        claim: Any,
        server: Any,
        inherit_parent_main: bool,
    ) -> None:
        self.handle = MpProcessHandle(proc, forkserver=True, reason=reason)
        self.claim_w = claim
        # the server that forked it (a spare of a replaced one is stale)
        self.server = server
        # whether multiprocessing set up our `__main__` in it: only a
        # spawn asking the same may have it
        self.inherit_parent_main = inherit_parent_main

    def give(self, args: SpawnArgs, info: tuple[Any, bytes|None]) -> None:
        name, uuid = args.uid
        kwargs = _child_kwargs(args, 'mp_forkserver', info)
        title = f'{name}@{uuid[:8]}'
        self.handle.proc.name = title
        try:
            # a few hundred bytes: one write into an empty pipe
            self.claim_w.send_bytes(_mp_reduction.ForkingPickler.dumps(
                (title, os.getcwd(), sys.path, kwargs)
            ))
        finally:
            self.claim_w.close()

    def dismiss(self) -> None:
        if not self.claim_w.closed:
            self.claim_w.close()


class _SparePool:
    def __init__(self, size: int) -> None:
        self.size = size
        self.ready: list[_Spare] = []
        self.dismissed: list[_Spare] = []
        self.last_spawn: float = 0.0
        self.wanted = trio.Event()
        # spares are made like the last spawn (see `_Spare`)
        self.inherit_parent_main: bool = True

    def claim(self, args: SpawnArgs) -> MpProcessHandle|None:
        self.inherit_parent_main = args.inherit_parent_main
        while self.ready:
            spare = self.ready.pop()
            if (
                spare.server == _server_id()
                and spare.inherit_parent_main == args.inherit_parent_main
                and spare.handle.alive()
            ):
                try:
                    spare.give(args, _forkserver_info())
                except OSError:
                    # it died just now
                    self.dismissed.append(spare)
                    continue
                return spare.handle
            spare.dismiss()
            self.dismissed.append(spare)
        return None

    def spawned(self) -> None:
        self.last_spawn = trio.current_time()
        self.wanted.set()

    async def _make(self) -> _Spare:
        info = await _ready_forkserver()
        inherit = self.inherit_parent_main
        reason = ReasonPipe()
        claim_r, claim_w = mp.Pipe(duplex=False)
        try:
            proc = await _fork(
                dict(target=_spare_main, args=(claim_r, reason.writer), name='spare'),
                info,
                inherit_parent_main=inherit,
            )
        except BaseException:
            reason.close()
            claim_w.close()
            raise
        finally:
            claim_r.close()
        reason.close_child_end()
        return _Spare(proc, reason, claim_w, _server_id(), inherit)

    async def keep(self) -> None:
        try:
            while True:
                await self.wanted.wait()
                # only once no spawn happened for a while: a spare never
                # takes CPU from children still booting
                while (left := self.last_spawn + REFILL_DELAY - trio.current_time()) > 0:
                    await trio.sleep(left)
                self.wanted = trio.Event()
                await self._reap_dismissed()
                while len(self.ready) < self.size:
                    try:
                        self.ready.append(await self._make())
                    except Exception as err:
                        # spawning does not depend on spares: the next
                        # spawn forks cold (and will say why if it fails)
                        logger.warning(f'Could not start a forkserver spare: {err!r}')
                        break
        finally:
            with trio.CancelScope(shield=True):
                await self.close()

    async def _reap_dismissed(self) -> None:
        while self.dismissed:
            await _end_spare(self.dismissed.pop())

    async def close(self) -> None:
        for spare in self.ready:
            spare.dismiss()
        self.dismissed += self.ready
        self.ready = []
        await self._reap_dismissed()


async def _end_spare(spare: _Spare) -> None:
    spare.dismiss()
    handle = spare.handle
    with trio.move_on_after(SPARE_STOP_BOUND):
        await handle.wait()
    if handle.alive():
        handle.kill()
        with trio.move_on_after(SPARE_STOP_BOUND):
            await handle.wait()
    await handle.release()


_spare_pool: trio.lowlevel.RunVar = trio.lowlevel.RunVar('_mp_fs_spares')


def _spares_for_run() -> _SparePool|None:
    if not SPARES:
        return None
    try:
        return _spare_pool.get()
    except LookupError:
        pool = _SparePool(SPARES)
        _spare_pool.set(pool)
        trio.lowlevel.spawn_system_task(pool.keep, name='mp-forkserver-spares')
        return pool


async def _loopback() -> None:
    # what every child does first: a TCP connect (the way the runtime
    # makes it, no resolver) and a few bytes each way
    listener, addr = await _tcp.open_listener(_tcp.TCPAddress('127.0.0.1', 0))
    async with listener:
        async with await _tcp.connect(addr) as client:
            async with await listener.accept() as server:
                await client.send_all(b'x')
                await server.receive_some(1)
    left, right = trio.socket.socketpair(socket.AF_UNIX)
    async with trio.SocketStream(left) as a, trio.SocketStream(right) as b:
        await a.send_all(b'x')
        await b.receive_some(1)


def warm_trio() -> None:
    '''
    Run trio once the way a child starts: one-off work (lazy imports,
    caches) done, and the pages it writes made this process's own.
    Best effort: a process that cannot just stays colder.
    '''
    try:
        trio.run(_loopback)
    except Exception:
        pass
