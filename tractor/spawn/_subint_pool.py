'''
Warm sub-interpreters for the `subint` backend.

Most of a `subint` spawn is not the interpreter (~8 ms to create) but
importing trio, msgspec and the runtime into it (~100+ ms, none of it
shareable with the parent). So an actor keeps `spares` interpreters
created and imported ahead of demand, and a spawn takes one that is
ready (`take()`); the spawn itself then only connects back and serves.

Rules:

* One interpreter per actor: a spare is handed to exactly one actor,
  whose thread destroys it when the actor ends (as a cold one), so no
  state passes from one actor to the next.
* Background, low priority: one "warmer" thread at a time, niced, fills
  the pool after each take, once no spawn is still warming its own
  interpreter (booting actors come first); it imports one module per
  step and checks for a stop request between steps. It only ever
  prepares interpreters: actors run on threads of their own (the
  warmer's niceness cannot be undone without privileges).
* A spawn takes a ready spare, else claims the one being warmed (the
  warmer lets go after its current step, the actor's thread does the
  rest), else a fresh one it creates and warms itself: never two
  interpreters warming for one spawn.
* Per trio run (actor): the pool is created by the first `take()` (or
  when a root opens with `eager`) together with a system task that
  tears it down when the run ends, Ctrl-C included: the warmer stops
  after its current step and every spare is destroyed, bounded by
  `STOP_BOUND`; the process's exit does the same for a pool whose run
  never tore it down. No thread and no interpreter outlives it.

Settings: `TRACTOR_SUBINT_SPARES` (spares kept warm, default 1; 0 turns
the pool off) and `TRACTOR_SUBINT_EAGER` (1: start filling as soon as a
root opens, else at the first `subint` spawn), or the same as
`open_root_actor(subint_spares=..., subint_eager=...)` for that root's
process. A `subint` actor spawning `subint` children has its own pool,
sized by the environment.
'''
from __future__ import annotations

import os
import sys
import threading
from typing import (
    Any,
    Callable,
)

import trio

from tractor import log

logger = log.get_logger()


def _env_int(name: str, default: int) -> int:
    try:
        return max(0, int(os.environ[name]))
    except (KeyError, ValueError):
        return default


SPARES: int = _env_int('TRACTOR_SUBINT_SPARES', 1)
EAGER: bool = bool(_env_int('TRACTOR_SUBINT_EAGER', 0))

# what a spare imports ahead, one step at a time: the runtime a child
# needs to connect back and serve (`_subint` pulls in the child entry)
WARM_IMPORTS: tuple[str, ...] = ('trio', 'msgspec', 'tractor', 'tractor.spawn._subint')
# the warmer's niceness (Linux: per thread)
NICE: int = 10
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


class Spare:
    '''
    An interpreter for one actor: warm, being warmed, or not made yet. A
    spawn may claim one still being warmed: the warmer hands it over
    after its current step and the actor's own thread (not niced) runs
    the steps left, or all of them for a fresh one.
    '''

    def __init__(self, pool: SubintPool, fresh: bool = False) -> None:
        self.pool = pool
        self.kind: str|None = None
        self.iid: int|None = None
        self.steps: list[str] = _warm_steps()
        self.claimed = fresh
        # set once the warmer let go of it (ready, handed over, or failed)
        self.handed = threading.Event()
        self.fresh = fresh
        if fresh:
            self.handed.set()

    def finish(self) -> tuple[str, int]|None:
        '''
        In the actor's thread: the interpreter, warmed through, or `None`
        (failed: start cold).
        '''
        import _interpreters
        try:
            self.handed.wait()
            if self.fresh:
                self.kind, config = self.pool._config_of()
                self.iid = _interpreters.create(config)
            if self.iid is None:
                return None
            for step in self.steps:
                excinfo = _interpreters.exec(self.iid, step)
                if excinfo is not None:
                    logger.warning(f'Warming a sub-interpreter failed: {excinfo.formatted}')
                    _destroy(self.iid)
                    return None
            self.steps = []
            return self.kind, self.iid
        finally:
            self.pool._finished_one()


class SubintPool:
    '''The spares of one trio run (one actor).'''

    def __init__(self, spares: int, config_of: ConfigOf) -> None:
        self.spares = spares
        self._config_of = config_of
        self._lock = threading.Lock()
        self._ready: list[Spare] = []
        self._inflight: Spare|None = None
        self._warmer: threading.Thread|None = None
        self._stop = threading.Event()
        # spares claimed by spawns and not warmed through yet: the warmer
        # waits for them (actors booting come first)
        self._finishing = 0
        self._idle = threading.Condition(self._lock)

    def take(self) -> Spare:
        '''
        A ready spare, else the one being warmed (unless claimed), else a
        fresh one; then refill in the background. Never blocks.
        '''
        with self._lock:
            if self._ready:
                spare = self._ready.pop(0)
            else:
                self._finishing += 1
                if self._inflight is not None and not self._inflight.claimed:
                    spare = self._inflight
                    spare.claimed = True
                else:
                    spare = Spare(self, fresh=True)
        self.refill()
        return spare

    def _finished_one(self) -> None:
        with self._lock:
            self._finishing -= 1
            self._idle.notify_all()

    def refill(self) -> None:
        with self._lock:
            if (
                self._stop.is_set()
                or self._warmer is not None
                or len(self._ready) >= self.spares
            ):
                return
            self._warmer = threading.Thread(
                target=self._warm, name='subint-pool-warmer', daemon=True,
            )
            self._warmer.start()

    @property
    def spare_ids(self) -> list[int]:
        '''Interpreters the pool holds (ready or being warmed, unclaimed).'''
        with self._lock:
            spares = self._ready + [self._inflight] if self._inflight else self._ready
            return [s.iid for s in spares if s.iid is not None and not s.claimed]

    # -- the warmer's thread --
    def _warm(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except (OSError, AttributeError):
            pass
        while True:
            with self._lock:
                while self._finishing > 0 and not self._stop.is_set():
                    self._idle.wait(0.1)
                if self._stop.is_set() or len(self._ready) >= self.spares:
                    self._warmer = None
                    return
                spare = self._inflight = Spare(self)
            ok = self._prepare(spare)
            with self._lock:
                self._inflight = None
                drop = not ok or (self._stop.is_set() and not spare.claimed)
                if drop:
                    iid, spare.iid = spare.iid, None
                elif not spare.claimed:
                    self._ready.append(spare)
                spare.handed.set()
                if not ok:
                    # failing: the next take() tries again
                    self._warmer = None
            if drop and iid is not None:
                _destroy(iid)
            if not ok:
                return

    def _prepare(self, spare: Spare) -> bool:
        '''Create and warm `spare` until done, claimed or stopped.'''
        import _interpreters
        try:
            spare.kind, config = self._config_of()
            spare.iid = _interpreters.create(config)
        except Exception as err:
            logger.warning(f'Could not create a spare sub-interpreter: {err!r}')
            return False
        while spare.steps:
            with self._lock:
                if spare.claimed:
                    return True
                if self._stop.is_set():
                    return True
            excinfo = _interpreters.exec(spare.iid, spare.steps[0])
            if excinfo is not None:
                logger.warning(f'Warming a sub-interpreter failed: {excinfo.formatted}')
                return False
            spare.steps.pop(0)
        return True

    # -- teardown --
    def close(self, bound: float = STOP_BOUND) -> None:
        '''Blocking: stop the warmer (after its current step), destroy the spares.'''
        self._stop.set()
        with self._lock:
            self._idle.notify_all()
            warmer = self._warmer
        if warmer is not None and warmer is not threading.current_thread():
            warmer.join(bound)
        with self._lock:
            ready, self._ready = self._ready, []
        for spare in ready:
            if spare.iid is not None:
                _destroy(spare.iid)


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
    For a spawn: a spare (`Spare.finish()` it in the actor's thread), or
    `None` when the pool is off (create an interpreter as before). Never
    waits.
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
