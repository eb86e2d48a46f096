'''
The tree-wide tty lock: one REPL at a time in the whole actor tree.

The root owns a FIFO lock. A subactor that wants a REPL opens a context
on the root's `lock_stdio_for_peer()` (this module is enabled for RPC in
every root) and keeps it open for as long as its REPL runs; ending the
dialog in any way (release message, error, cancellation, the subactor's
connection dropping) releases the lock. Root tasks take the same lock
directly.

No `pdb` here: every root imports this module.
'''
from __future__ import annotations

import os
import signal
import sys
from collections import deque
from typing import (
    Any,
    Callable,
    NoReturn,
)

import trio

from tractor import log
from tractor._context import (
    Context,
    context,
)
from tractor.msg.pretty_struct import Struct
from tractor.runtime import (
    _debug_hooks,
    _state,
)

logger = log.get_logger()

_ctlc_ignore_header: str = 'Ignoring SIGINT while debug REPL in use'


class LockStatus(Struct, tag=True, tag_field='msg_type'):
    '''The root's answer: whether `subactor_uid` now holds the lock.'''
    subactor_uid: tuple[str, str]
    cid: str
    locked: bool


class LockRelease(Struct, tag=True, tag_field='msg_type'):
    '''A subactor's REPL has ended: hand the lock on.'''
    subactor_uid: tuple[str, str]
    cid: str


class FifoLock:
    '''
    A first-come-first-served lock whose `release()` is synchronous and
    may be called by any task (the REPL that ends a session runs in the
    traced task's frame, or in a worker thread's, not in the acquirer).
    '''

    def __init__(self) -> None:
        self.owner: Any = None
        self._waiters: deque[tuple[Any, trio.Event]] = deque()
        self._free = trio.Event()
        self._free.set()

    def locked(self) -> bool:
        return self.owner is not None

    async def acquire(self, owner: Any) -> None:
        if self.owner is None and not self._waiters:
            # a cancelled caller must not leave with the lock taken
            await trio.lowlevel.checkpoint_if_cancelled()
            self._take(owner)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        entry = (owner, trio.Event())
        self._waiters.append(entry)
        try:
            await entry[1].wait()
        except BaseException:
            if entry in self._waiters:
                self._waiters.remove(entry)
            elif self.owner is owner:
                # handed over just as we were cancelled: pass it on
                self.release()
            raise

    def _take(self, owner: Any) -> None:
        self.owner = owner
        if self._free.is_set():
            self._free = trio.Event()

    def release(self) -> None:
        if self._waiters:
            owner, event = self._waiters.popleft()
            self._take(owner)
            event.set()
            return
        self.owner = None
        self._free.set()

    async def wait_free(self) -> None:
        while self.owner is not None:
            await self._free.wait()


class _RootLockState:
    '''The root's lock, plus what the root does while somebody holds it.'''

    def __init__(self) -> None:
        self.lock = FifoLock()
        # owner -> (the cancel scope holding it, the peer's context): for
        # breaking a stale lock
        self.peer_ctxs: dict[tuple, tuple[trio.CancelScope, Context]] = {}
        self.prev_sigint: Any = None
        # set by `_trace` to re-print a REPL prompt of an actor sharing
        # our process (a sub-interpreter child gets no SIGINT of its own)
        self.reprint_prompt: Callable[[], None]|None = None
        self.trio_token = trio.lowlevel.current_trio_token()
        # peers that never get the lock again: they disconnected (while
        # holding it, or a channel of theirs dropped or was torn down by
        # us); an actor's uid is unique to its life, so this only ever
        # refuses the remains of one that is going or gone
        self.blocked: set[tuple[str, str]] = set()

    async def acquire(self, owner: tuple) -> None:
        await self.lock.acquire(owner)
        self._shield_sigint()
        _shield_root(True)

    def release(self, owner: tuple) -> None:
        if self.lock.owner != owner:
            return
        self.lock.release()
        if not self.lock.locked():
            self._restore_sigint()
            _shield_root(False)

    def _break_if_stale(self, owner: tuple) -> bool:
        '''
        A lock whose holder's connection is gone is stale: end its dialog
        (which releases it) and handle Ctrl-C as usual again.
        '''
        held = self.peer_ctxs.get(owner)
        if held is None or held[1].chan.connected():
            return False
        logger.warning(f'Breaking the stale tty lock of {owner[0]!r} (disconnected)')
        # (we may be in a signal handler: let trio's loop do it)
        self.trio_token.run_sync_soon(held[0].cancel)
        self._restore_sigint()
        return True

    def _shield_sigint(self) -> None:
        if self.prev_sigint is not None:
            return
        try:
            self.prev_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:
            # not the main thread of the main interpreter: no signals here
            self.prev_sigint = None

    def _restore_sigint(self) -> None:
        prev, self.prev_sigint = self.prev_sigint, None
        if prev is not None:
            try:
                signal.signal(signal.SIGINT, prev)
            except ValueError:
                pass

    def _on_sigint(self, signum: int, frame: Any) -> None:
        owner = self.lock.owner
        if owner is None:
            # the lock was broken meanwhile: normal Ctrl-C handling
            self._restore_sigint()
            signal.raise_signal(signal.SIGINT)
            return
        if self._break_if_stale(owner):
            return
        (actor_uid, task_uid), pid = owner[:2], owner[2]
        logger.pdb(f'{_ctlc_ignore_header}\nREPL held by {actor_uid!r} {task_uid!r}')
        if pid == os.getpid():
            # our own REPL or a sub-interpreter actor's: only we got the
            # signal, so we show the prompt again for it
            reprint = self.reprint_prompt
            if reprint is not None:
                reprint()


_root_state: _RootLockState|None = None


def _shield_root(on: bool) -> None:
    scope = _debug_hooks.root_scope
    if scope is not None:
        scope.shield = on


def _root_lock() -> _RootLockState:
    '''This root's lock state (created with its runtime, see `_boot_root`).'''
    if _root_state is None:
        raise RuntimeError('The tty lock lives in the root actor only')
    return _root_state


def _boot_root(actor: Any) -> None:
    global _root_state
    _root_state = _RootLockState()

    def _drop() -> None:
        global _root_state
        if _root_state is not None:
            _root_state._restore_sigint()
        _root_state = None

    actor.lifetime_stack.callback(_drop)


def _refusal(ctx: Context) -> str|None:
    '''
    Why the root will not give the lock to the peer behind `ctx` (`None`:
    it may have it): the root is cancelling, the peer disconnected before,
    or the root is tearing down a channel of that peer (it asked the peer
    to cancel, or the channel is going): a REPL opened there now would be
    torn down under the user.
    '''
    actor = _state.current_actor()
    uid = ctx.chan.aid.uid
    if actor.cancel_called:
        return 'the root is cancelling'
    if uid in _root_lock().blocked:
        return 'it disconnected from the root before'
    server = actor.ipc_server
    for chan in (server._peers.get(uid, ()) if server is not None else ()):
        if chan._cancel_called:
            return 'the root is cancelling it'
        if chan is not ctx.chan and not chan.connected():
            return 'the root is tearing down its channel'
    return None


async def _refuse(ctx: Context, why: str) -> NoReturn:
    '''Cancel the peer's lock request (it gets a `ContextCancelled`).'''
    logger.warning(f'Refusing the tty lock to {ctx.chan.aid.uid!r}: {why}')
    await ctx.cancel()
    await trio.lowlevel.checkpoint()
    # (unreachable: our own task's scope is cancelled) never grant it
    raise RuntimeError(f'tty lock refused: {why}')


def peer_disconnected(chan: Any, graceful: bool) -> None:
    '''
    A channel of the root ended (the core's hook): a peer whose channel
    was lost, or that the root had asked to cancel, takes the lock no
    more. (A subactor's short lock dialogs and queries end gracefully.)
    '''
    state = _root_state
    aid = getattr(chan, 'aid', None)
    if state is None or aid is None or not _state.debug_mode():
        # (a root not in debug mode serves many peers and seldom a REPL:
        # only a lock holder it loses is remembered there)
        return
    if chan._cancel_called or not graceful:
        state.blocked.add(aid.uid)


@context(pld_spec=LockStatus|LockRelease)
async def lock_stdio_for_peer(
    ctx: Context,
    subactor_task_uid: tuple[str, int],
) -> LockStatus:
    '''
    Hold the tree-wide tty lock for a subactor's REPL: acquired (FIFO)
    before `started()`, released when the peer sends `LockRelease` or the
    dialog ends in any other way. Refused (the request is cancelled) to a
    peer the root is tearing down or that disconnected before, see
    `_refusal()`.
    '''
    state = _root_lock()
    uid = ctx.chan.aid.uid
    owner = (uid, tuple(subactor_task_uid), ctx.chan.aid.pid, ctx.cid)
    if (why := _refusal(ctx)) is not None:
        await _refuse(ctx, why)
    # queued in turn; a request cancelled meanwhile (by its peer, which
    # gave up or is gone, or by the root's own teardown) leaves the queue
    await state.acquire(owner)
    if (why := _refusal(ctx)) is not None:
        # its turn came while the root started tearing it down
        state.release(owner)
        await _refuse(ctx, why)
    released = False
    try:
        # held until the peer says so or is gone: neither a cancelled root
        # (a timeout around it, its own teardown) nor anything else ends a
        # REPL under the user's fingers; `_break_if_stale()` can
        with trio.CancelScope(shield=True) as hold:
            state.peer_ctxs[owner] = (hold, ctx)
            logger.devx(f'tty lock acquired by {uid!r} {subactor_task_uid!r}')
            try:
                await ctx.started(LockStatus(subactor_uid=uid, cid=ctx.cid, locked=True))
                async with ctx.open_stream() as stream:
                    msg = await stream.receive()
                    released = isinstance(msg, LockRelease)
                    if not released:
                        logger.warning(f'Unexpected msg from tty lock holder {uid!r}: {msg!r}')
            except Exception as gone:
                # the holder died or dropped its connection: that is what
                # frees a stale lock, not an error of ours (no crash REPL)
                logger.warning(f'tty lock holder {uid!r} went away ({gone!r}); lock released')
    finally:
        state.peer_ctxs.pop(owner, None)
        state.release(owner)
        logger.devx(f'tty lock released by {uid!r} {subactor_task_uid!r}')
        if not released and not _peer_cancelled(ctx):
            # lost while holding (not a request its peer withdrew)
            state.blocked.add(uid)
    return LockStatus(subactor_uid=uid, cid=ctx.cid, locked=False)


def _peer_cancelled(ctx: Context) -> bool:
    '''Whether the peer itself cancelled its lock dialog.'''
    return ctx._scope is not None and ctx._scope.cancel_called and (
        ctx._canceller == ctx.chan.aid.uid
    )


@context
async def wait_for_release(ctx: Context) -> bool:
    '''
    Tell a subactor tearing down its nursery when nobody holds the lock
    (returns whether it was held when asked).
    '''
    state = _root_lock()
    held = state.lock.locked()
    await ctx.started(held)
    await state.lock.wait_free()
    return held


@context
async def lock_is_held(ctx: Context) -> bool:
    '''Whether some actor of the tree holds the tty lock right now.'''
    state = _root_lock()
    await ctx.started()
    return state.lock.locked()


def _held_by_root_task() -> bool:
    state = _root_state
    if state is None or state.lock.owner is None:
        return False
    return state.lock.owner[2] == os.getpid() and state.lock.owner[0] == _uid()


def _uid() -> tuple[str, str]|None:
    actor = _state.current_actor(err_on_no_runtime=False)
    return actor.aid.uid if actor is not None else None


def _write(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
