'''
Warm sub-interpreters for the `subint` backend.

Most of a `subint` spawn is not the interpreter (~8 ms to create) but
importing trio, msgspec and the runtime into it (~100+ ms, none of it
shareable with the parent). So an actor keeps `spares` interpreters
created and imported ahead of demand, each by a thread of its own which
then *is* the actor's thread: a spawn hands a spare its actor
(`take()`, `Spare.run()`) and only connects back and serves.

Rules:

* The thread that warms an interpreter runs its actor, so everything
  the interpreter ever ran ran on that actor's thread, as in a cold
  spawn. (A first version warmed on a helper thread and ran the actor
  on another: with it `test_unreachable_child_is_torn_down
  [dead-channel-shielded]` failed 3 times out of 3, the interrupt ladder
  not ending the child within the bound; the cause was not pinned down,
  this design passes.)
* One interpreter per actor: the actor's thread destroys it when the
  actor ends, as a cold one; interpreter ids never repeat, so nothing
  passes from one actor to the next.
* Background, low priority: one spare warms at a time, starting
  `REFILL_DELAY` after the last spawn took one (a burst of spawns, or a
  booting actor, does not share the GIL with a warm-up), one module per
  step, checking for a stop request between steps. A spawn takes a
  ready spare, else the one being warmed (it goes on warming, then runs
  the actor), else a fresh one (a cold spawn the pool knows of: no
  refill starts until it is warm): never two interpreters warming for
  one spawn. (Not niced: a claimed spare's thread becomes an actor's,
  and an unprivileged thread cannot be un-niced.)
* Per trio run (actor): the pool is created by the first `take()` (or
  when a root opens with `eager`) together with a system task that
  tears it down when the run ends, Ctrl-C included: unclaimed spares
  stop after their current step and destroy their interpreter, bounded
  by `STOP_BOUND`; a `threading` exit hook does the same for a pool whose
  run never tore it down. No thread and no interpreter outlives it.

Settings: `TRACTOR_SUBINT_SPARES` (spares kept warm, default 1; 0 turns
the pool off) and `TRACTOR_SUBINT_EAGER` (1: start filling as soon as a
root opens, else at the first `subint` spawn), or the same as
`open_root_actor(subint_spares=..., subint_eager=...)` for that root's
process. A `subint` actor spawning `subint` children has its own pool,
sized by the environment.
'''
from __future__ import annotations

import sys
import threading
import time
from typing import (
    Any,
    Callable,
)

import trio

from tractor import log
from ._env import env_count

logger = log.get_logger()


SPARES: int = env_count('TRACTOR_SUBINT_SPARES', 1)
EAGER: bool = bool(env_count('TRACTOR_SUBINT_EAGER', 0))

# what a spare imports ahead, one step at a time: the runtime a child
# needs to connect back and serve (`_subint` pulls in the child entry),
# and `pickle`, which its boot would otherwise import first thing (the
# actor's thread hands it its entry and arguments through
# `_interpreters.call()`, which unpickles them inside): ~1.5 ms of a spawn
WARM_IMPORTS: tuple[str, ...] = (
    'trio', 'msgspec', 'tractor', 'tractor.spawn._subint', 'pickle',
)
# seconds after the last spawn before a spare starts warming, so a new
# actor boots (connects, handshakes, registers) and a burst of spawns
# runs without sharing the GIL with an import
REFILL_DELAY: float = 0.1
# how long tearing a pool down may take at most (one import step, and
# destroying the spares)
STOP_BOUND: float = 2.0

# (config kind, interpreter config) of new actor interpreters; blocking
ConfigOf = Callable[[], tuple[str, Any]]


def configure(spares: int|None = None, eager: bool|None = None) -> tuple[int, bool]:
    '''
    Override the environment's settings for this process (`None` keeps
    one); returns the previous `(spares, eager)`, to restore them.
    '''
    global SPARES, EAGER
    previous = SPARES, EAGER
    if spares is not None:
        SPARES = max(0, int(spares))
    if eager is not None:
        EAGER = bool(eager)
    return previous


def _destroy(iid: int) -> None:
    import _interpreters
    try:
        _interpreters.destroy(iid)
    except Exception as err:
        logger.error(f'Could not destroy the spare sub-interpreter {iid}: {err!r}')


def _warm_steps() -> list[str]:
    steps = [f'import sys\nsys.path[:] = {sys.path!r}\n']
    return steps + [f'import {name}\n' for name in WARM_IMPORTS]


# what a spare runs once a spawn handed it its actor: `job(warm)`, `warm`
# being `(config kind, interpreter id)`, or `None` to start cold
Job = Callable[['tuple[str, int]|None'], None]


class Spare:
    '''A thread warming an interpreter, to then run one actor in it.'''

    def __init__(self, pool: SubintPool, fresh: bool = False) -> None:
        self.pool = pool
        # made for a spawn that found nothing warm (not a refill)
        self.fresh = fresh
        self.kind: str|None = None
        self.iid: int|None = None
        self.warm = False
        self.job: Job|None = None
        self._wake = threading.Event()
        self.thread = threading.Thread(
            target=self._main, name='subint-pool-spare', daemon=True,
        )

    def run(self, job: Job, name: str) -> threading.Thread:
        '''For a spawn: this spare runs `job` (the actor), now or once warm.'''
        with self.pool._lock:
            self.job = job
            self.thread.name = name
            self._wake.set()
            self.pool._quiet.notify_all()
        return self.thread

    # -- its thread --
    def _main(self) -> None:
        pool = self.pool
        try:
            pool._wait_quiet(self)
            ok = self._prepare()
            pool._prepared(self, ok)
            while not self._wake.wait(0.5):
                pass
        except BaseException as err:
            logger.error(f'A spare sub-interpreter thread failed: {err!r}')
            ok = False
        job = self.job
        if job is None:
            # stopped unclaimed
            if self.iid is not None:
                _destroy(self.iid)
            return
        if not ok and self.iid is not None:
            _destroy(self.iid)
            self.iid = None
        job((self.kind, self.iid) if ok and self.iid is not None else None)

    def _prepare(self) -> bool:
        '''Create and warm the interpreter; `False`: failed or stopped unclaimed.'''
        import _interpreters
        pool = self.pool
        try:
            self.kind, config = pool._config_of()
            self.iid = _interpreters.create(config)
        except Exception as err:
            logger.warning(f'Could not create a spare sub-interpreter: {err!r}')
            return False
        for step in _warm_steps():
            if pool._stop.is_set() and self.job is None:
                return False
            excinfo = _interpreters.exec(self.iid, step)
            if excinfo is not None:
                logger.warning(f'Warming a sub-interpreter failed: {excinfo.formatted}')
                return False
        return True


class SubintPool:
    '''The spares of one trio run (one actor).'''

    def __init__(self, spares: int, config_of: ConfigOf) -> None:
        self.spares = spares
        self._config_of = config_of
        self._lock = threading.Lock()
        self._ready: list[Spare] = []
        # the spare warming now (at most one), claimed or not
        self._inflight: Spare|None = None
        self._stop = threading.Event()
        self._quiet = threading.Condition(self._lock)
        self._last_take = 0.0
        self._threads: list[threading.Thread] = []
        # fresh spares still warming: no refill until they are done (the
        # actors they are for come first)
        self._booting = 0

    def take(self) -> Spare:
        '''
        A ready spare, else the one warming (unless claimed), else a fresh
        one started now (a cold spawn, on a thread the pool knows of);
        then refill in the background. Never blocks.
        '''
        with self._lock:
            self._last_take = time.monotonic()
            if self._ready:
                spare = self._ready.pop(0)
            elif self._inflight is not None and self._inflight.job is None:
                spare = self._inflight
            else:
                spare = Spare(self, fresh=True)
                self._booting += 1
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(spare.thread)
            # claimed: `Spare.run()` follows at once
            spare.job = _claimed
        if spare.fresh and not spare.thread.is_alive():
            spare.thread.start()
        self.refill()
        return spare

    def refill(self) -> None:
        with self._lock:
            if (
                self._stop.is_set()
                or self._inflight is not None
                or self._booting
                or len(self._ready) >= self.spares
            ):
                return
            spare = self._inflight = Spare(self)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(spare.thread)
            spare.thread.start()

    @property
    def spare_ids(self) -> list[int]:
        '''Interpreters the pool holds for no actor yet (ready or warming).'''
        with self._lock:
            spares = self._ready + ([self._inflight] if self._inflight else [])
            return [s.iid for s in spares if s.iid is not None and s.job is None]

    def _wait_quiet(self, spare: Spare) -> None:
        '''In a new spare's thread: until `REFILL_DELAY` after the last take.'''
        with self._lock:
            while spare.job is None and not self._stop.is_set():
                wait = self._last_take + REFILL_DELAY - time.monotonic()
                if wait <= 0:
                    return
                self._quiet.wait(wait)

    def _prepared(self, spare: Spare, ok: bool) -> None:
        with self._lock:
            if spare.fresh:
                self._booting -= 1
            elif self._inflight is spare:
                self._inflight = None
            if ok and spare.job is None and not self._stop.is_set():
                spare.warm = True
                self._ready.append(spare)
            elif spare.job is None:
                # stopped (or failed) unclaimed: its thread ends
                spare._wake.set()
        if (ok or spare.fresh) and not self._stop.is_set():
            # a claimed one runs its actor now; keep the pool full (a
            # refill that failed waits for the next spawn to try again)
            self.refill()

    # -- teardown --
    def close(self, bound: float = STOP_BOUND) -> None:
        '''Blocking: unclaimed spares stop (after their current step) and go.'''
        with self._lock:
            self._stop.set()
            self._quiet.notify_all()
            ready, self._ready = self._ready, []
            for spare in ready:
                spare._wake.set()
            if self._inflight is not None and self._inflight.job is None:
                self._inflight._wake.set()
            threads = [
                t for t in self._threads
                if t.name == 'subint-pool-spare' and t is not threading.current_thread()
            ]
        deadline = time.monotonic() + bound
        for thread in threads:
            thread.join(max(0, deadline - time.monotonic()))


def _claimed(_warm: Any) -> None:
    # placeholder job between `take()` and `Spare.run()`
    raise RuntimeError('a claimed spare was never given its actor')


# the pool of the current trio run, with its run's token
_pool: SubintPool|None = None
_pool_token: Any = None


def pool_for_run(config_of: ConfigOf) -> SubintPool|None:
    '''This run's pool (made on first use, with its keeper), `None` when off.'''
    global _pool, _pool_token
    if SPARES <= 0:
        return None
    token = trio.lowlevel.current_trio_token()
    if _pool is None or _pool_token is not token:
        _pool, _pool_token = SubintPool(SPARES, config_of), token
        trio.lowlevel.spawn_system_task(_keep, _pool, name='subint-pool-keeper')
    return _pool


def take(config_of: ConfigOf) -> Spare|None:
    '''
    For a spawn: a spare to `run()` the actor (warm, warming, or fresh:
    it warms, then runs the actor), or `None` when the pool is off (start
    cold as before). Never waits.
    '''
    pool = pool_for_run(config_of)
    return pool.take() if pool is not None else None


def fill(config_of: ConfigOf) -> None:
    '''Start warming this run's spares now (`eager`), ahead of any spawn.'''
    pool = pool_for_run(config_of)
    if pool is not None:
        pool.refill()


def spare_ids() -> list[int]:
    '''Interpreters held warm right now (not actors).'''
    return _pool.spare_ids if _pool is not None else []


async def _keep(pool: SubintPool) -> None:
    '''Tears the pool down when the run ends (system tasks are cancelled then).'''
    global _pool, _pool_token
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            pool._stop.set()
            with trio.move_on_after(STOP_BOUND):
                # not a cached trio worker: our own short-lived thread
                done = trio.Event()
                token = trio.lowlevel.current_trio_token()

                def close() -> None:
                    try:
                        pool.close()
                    finally:
                        try:
                            token.run_sync_soon(done.set)
                        except trio.RunFinishedError:
                            pass

                threading.Thread(target=close, name='subint-pool-close', daemon=True).start()
                await done.wait()
        if _pool is pool:
            _pool, _pool_token = None, None


def _close_at_exit() -> None:
    if _pool is not None:
        _pool.close()


# before the interpreter joins its threads at exit (as `concurrent.futures` does)
threading._register_atexit(_close_at_exit)
