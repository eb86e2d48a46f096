'''
The tree-wide tty lock without a terminal: subactors of every backend
take the root's lock over IPC exactly as a REPL does (a context on
`tractor.devx.debug._tty_lock:lock_stdio_for_peer`), hold it, and let it
go in each way it can end; the root's teardown waits for it. Also the
errors a misuse gets, and `import tractor` staying free of `pdb`.
'''
from __future__ import annotations

import io
import subprocess
from functools import partial
import sys
import time

import pytest
import trio
import tractor
from tractor._testing import nursery_kwargs
from tractor.devx.debug import (
    LockRelease,
    LockStatus,
    _tty_lock,
)
from tractor.discovery._api import get_root

TEST_BOUND: float = 30


async def take_tty_lock(hold: float|None) -> bool:
    '''
    Take the root's tty lock like a REPL would; give it back after `hold`
    seconds (`None`: never). Returns whether the root's final status says
    unlocked.
    '''
    actor = tractor.current_actor()
    task = trio.lowlevel.current_task()
    async with get_root() as portal:
        async with portal.open_context(
            _tty_lock.lock_stdio_for_peer,
            subactor_task_uid=(task.name, id(task)),
        ) as (ctx, status):
            assert isinstance(status, LockStatus) and status.locked
            async with ctx.open_stream() as stream:
                if hold is None:
                    await trio.sleep_forever()
                await trio.sleep(hold)
                await stream.send(LockRelease(subactor_uid=actor.aid.uid, cid=ctx.cid))
            final = await ctx.wait_for_result()
    return isinstance(final, LockStatus) and not final.locked


def root_lock() -> _tty_lock.FifoLock:
    return _tty_lock._root_lock().lock


async def wait_until(predicate, what: str, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


def holder_name() -> str|None:
    owner = root_lock().owner
    return owner[0][0] if owner else None


def test_holders_take_turns_fifo(reg_addr, start_method):
    '''Two subactors asking at once get the lock one after the other, in order.'''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method), debug_mode=True,
            ) as an:
                first = await an.start_actor('first', enable_modules=[__name__])
                second = await an.start_actor('second', enable_modules=[__name__])
                holders: list[str] = []
                results: dict[str, bool] = {}

                async def track() -> None:
                    while True:
                        name = holder_name()
                        if name and (not holders or holders[-1] != name):
                            holders.append(name)
                        await trio.sleep(0.01)

                async def run(portal, name: str) -> None:
                    results[name] = await portal.run(take_tty_lock, hold=0.5)

                async with trio.open_nursery() as tn:
                    tn.start_soon(track)
                    tn.start_soon(run, first, 'first')
                    await wait_until(lambda: holder_name() == 'first', 'first holds')
                    tn.start_soon(run, second, 'second')
                    await wait_until(lambda: len(results) == 2, 'both done')
                    tn.cancel_scope.cancel()
                assert holders == ['first', 'second']
                assert results == {'first': True, 'second': True}
                assert not root_lock().locked()
                await an.cancel()

    trio.run(main)


@pytest.mark.parametrize('how', ['cancel', 'kill'])
def test_lock_is_released_when_its_holder_ends(reg_addr, start_method, how):
    '''
    A holder that is cancelled, or dies without a word (killed), never
    leaves the lock taken: the root frees it once the holder's dialog or
    connection ends, and the next one in line gets it.
    '''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method), debug_mode=True,
            ) as an:
                holder = await an.start_actor('holder', enable_modules=[__name__])
                waiter = await an.start_actor('waiter', enable_modules=[__name__])
                got_it: list[bool] = []
                async with trio.open_nursery() as tn:
                    async def hold_forever() -> None:
                        try:
                            await holder.run(take_tty_lock, hold=None)
                        except Exception:
                            pass  # its end is what this test causes

                    tn.start_soon(hold_forever)
                    await wait_until(lambda: holder_name() == 'holder', 'held')

                    async def next_in_line() -> None:
                        got_it.append(await waiter.run(take_tty_lock, hold=0))

                    tn.start_soon(next_in_line)
                    await trio.sleep(0.3)
                    assert holder_name() == 'holder'
                    start = time.monotonic()
                    if how == 'cancel':
                        await holder.cancel_actor()
                    else:
                        _sub, handle, _portal = an._children[holder.chan.aid.uid]
                        handle.kill()
                    await wait_until(lambda: got_it, 'the waiter got the lock')
                    freed_after = time.monotonic() - start
                assert got_it == [True]
                assert not root_lock().locked()
                print(f'lock freed {freed_after:.2f}s after the holder was {how}ed')
                assert freed_after < 5
                await an.cancel()

    if how == 'kill':
        # a killed daemon is an error of its nursery
        with pytest.raises((tractor.RemoteActorError, BaseExceptionGroup, Exception)):
            trio.run(main)
    else:
        trio.run(main)


def test_teardown_waits_for_the_lock(reg_addr, start_method):
    '''
    The body fails while a child holds the lock: the nursery cancels
    nobody before the lock is given back, so the hold runs to its end
    (were the holder cancelled, its dialog would end and free the lock
    at once).
    '''
    hold = 2.0

    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, start_method),
                debug_mode=True,
                # no crash REPL for the root (no terminal here)
                debug_filter=lambda err: False,
            ):
                freed_at: list[float] = []
                async with trio.open_nursery() as tn:
                    async def note_release() -> None:
                        await wait_until(lambda: holder_name() == 'holder', 'held')
                        await wait_until(lambda: not root_lock().locked(), 'freed', 20)
                        freed_at.append(time.monotonic())

                    tn.start_soon(note_release)
                    with pytest.raises(ValueError, match='body fails'):
                        async with tractor.open_nursery() as an:
                            holder = await an.start_actor('holder', enable_modules=[__name__])
                            an._da_nursery.start_soon(
                                partial(holder.run, take_tty_lock, hold=hold)
                            )
                            await wait_until(lambda: holder_name() == 'holder', 'held')
                            failed_at = time.monotonic()
                            raise ValueError('body fails while the lock is held')
                    done_at = time.monotonic()
                assert freed_at
                print(f'lock freed {freed_at[0] - failed_at:.2f}s after the body failed')
                assert freed_at[0] - failed_at >= hold - 0.3
                # and the nursery raised only after that (give or take the
                # tracker's polling)
                assert done_at >= freed_at[0] - 0.1

    trio.run(main)


# -- misuse gets a clear error --

def test_pause_outside_debug_mode_is_an_error(reg_addr):
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(registry_addrs=[reg_addr]):
                with pytest.raises(RuntimeError, match='debug_mode=True'):
                    await tractor.pause()
                with pytest.raises(RuntimeError, match='debug_mode=True'):
                    tractor.pause_from_sync()

    trio.run(main)


def test_pause_from_sync_without_runtime():
    with pytest.raises(tractor._exceptions.NoRuntime, match='allow_no_runtime'):
        tractor.pause_from_sync()


def test_post_mortem_needs_an_exception(reg_addr):
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(
                registry_addrs=[reg_addr], debug_mode=True,
            ):
                with pytest.raises(ValueError, match='tb='):
                    await tractor.post_mortem()

    trio.run(main)


def test_builtin_breakpoint_hook_is_set_and_restored(reg_addr):
    '''
    In a root without debug mode, `breakpoint()` is refused (it would
    clobber the terminal of a tree); in debug mode it is ours; both are
    undone when the root exits.
    '''
    import os
    before_hook, before_env = sys.breakpointhook, os.environ.get('PYTHONBREAKPOINT')

    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(registry_addrs=[reg_addr]):
                assert os.environ['PYTHONBREAKPOINT'] == '0'
                with pytest.raises(RuntimeError, match='debug mode'):
                    breakpoint()
            assert sys.breakpointhook is before_hook
            async with tractor.open_root_actor(
                registry_addrs=[reg_addr], debug_mode=True,
            ):
                assert sys.breakpointhook is tractor.devx.debug._sync_pause_from_builtin
                assert os.environ['PYTHONBREAKPOINT'] == (
                    'tractor.devx.debug._sync_pause_from_builtin'
                )

    trio.run(main)
    assert sys.breakpointhook is before_hook
    assert os.environ.get('PYTHONBREAKPOINT') == before_env


def test_import_tractor_imports_no_pdb():
    '''`pdb`/`pdbp` load when a REPL is wanted, not with the package.'''
    code = (
        'import sys, trio, tractor\n'
        'bad = {"pdb", "pdbp"} & set(sys.modules)\n'
        'assert not bad, bad\n'
        'async def main():\n'
        '    async with tractor.open_root_actor(\n'
        f'        registry_addrs=[("127.0.0.1", {_free_port()})], debug_mode=True,\n'
        '    ):\n'
        '        pass\n'
        'trio.run(main)\n'
        'bad = {"pdb", "pdbp"} & set(sys.modules)\n'
        'assert not bad, bad\n'
        'print("clean")\n'
    )
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert 'clean' in out.stdout


def _free_port() -> int:
    from tractor._testing.addr import get_rando_addr
    return get_rando_addr('tcp')[1]


def test_acquire_debug_lock_holds_the_tree_lock(reg_addr, start_method):
    '''`tractor.devx.acquire_debug_lock()` takes the root's lock for a block, in the root or a child.'''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method), debug_mode=True,
            ) as an:
                me = tractor.current_actor().aid.uid
                async with tractor.devx.acquire_debug_lock(me):
                    assert holder_name() == 'root'
                assert not root_lock().locked()
                child = await an.start_actor('locker', enable_modules=[__name__])
                async with trio.open_nursery() as tn:
                    tn.start_soon(partial(child.run, hold_debug_lock, secs=0.5))
                    await wait_until(lambda: holder_name() == 'locker', 'child holds')
                await wait_until(lambda: not root_lock().locked(), 'freed')
                await an.cancel()

    trio.run(main)


async def hold_debug_lock(secs: float) -> None:
    async with tractor.devx.acquire_debug_lock(tractor.current_actor().aid.uid):
        await trio.sleep(secs)


def test_sync_pause_in_the_trio_thread_needs_greenback(reg_addr):
    '''Without a greenback portal, `breakpoint()` in a trio task says what to enable.'''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(
                registry_addrs=[reg_addr], debug_mode=True,
            ):
                with pytest.raises(RuntimeError, match='maybe_enable_greenback=True'):
                    breakpoint()
                with pytest.raises(RuntimeError, match='maybe_enable_greenback=True'):
                    tractor.pause_from_sync()
                # and nothing was left locked
                assert not root_lock().locked()

    trio.run(main)


# -- re-entry and cancelled scopes (spec §9.2) --

def test_repl_inside_acquire_debug_lock_keeps_the_lock(reg_addr):
    '''
    The task holding the lock through `acquire_debug_lock()` pauses and
    post-mortems inside the block: both REPLs open in its session (taking
    the lock again would wait for itself), and `c` leaves the lock to the
    block, which releases it on exit.
    '''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_root_actor(
                registry_addrs=[reg_addr], debug_mode=True,
            ):
                out = io.StringIO()
                async with tractor.devx.acquire_debug_lock(tractor.current_actor().aid.uid):
                    await tractor.pause(stdin=io.StringIO('p 6 * 7\nc\n'), stdout=out)
                    assert holder_name() == 'root'
                    try:
                        raise KeyError('inspected in the block')
                    except KeyError:
                        await tractor.post_mortem(stdin=io.StringIO('p 7 * 8\nc\n'), stdout=out)
                    assert holder_name() == 'root'
                assert not root_lock().locked()
                assert '42' in out.getvalue() and '56' in out.getvalue()

    trio.run(main)


async def unshielded_pause_in_cancelled_scope() -> bool:
    with trio.CancelScope() as cs:
        cs.cancel()
        await tractor.pause()
        raise AssertionError('pause() returned in a cancelled scope')
    return cs.cancelled_caught


def test_unshielded_pause_in_a_cancelled_scope_raises_cancelled(reg_addr, start_method):
    '''
    `pause()` without `shield=True` from a cancelled scope, in the root
    and in a child: `trio.Cancelled` (caught by that scope), no lock taken.
    '''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method), debug_mode=True,
            ) as an:
                assert await unshielded_pause_in_cancelled_scope()
                assert not root_lock().locked()
                child = await an.start_actor('canceller', enable_modules=[__name__])
                assert await child.run(unshielded_pause_in_cancelled_scope)
                assert not root_lock().locked()
                await an.cancel()

    trio.run(main)


# -- refusals (spec §9.5, point 4) --

async def take_then_drop() -> bool:
    '''Take the root's lock, then drop the connection without a `LockRelease`.'''
    task = trio.lowlevel.current_task()
    dropped = False
    try:
        async with get_root() as portal:
            async with portal.open_context(
                _tty_lock.lock_stdio_for_peer,
                subactor_task_uid=(task.name, id(task)),
            ) as (ctx, status):
                assert status.locked
                await portal.chan.aclose()
                dropped = True
                with trio.move_on_after(TEST_BOUND / 3):
                    await trio.sleep_forever()
    except Exception:
        pass  # the dialog ends badly: that is the point
    return dropped


async def try_the_lock() -> str:
    '''Take the tree lock for a moment like a REPL would; say what happened.'''
    try:
        async with tractor.devx.acquire_debug_lock(tractor.current_actor().aid.uid):
            return 'locked'
    except tractor._exceptions.DebugRequestError as err:
        return f'refused: {err}'


def test_a_disconnected_holder_never_gets_the_lock_again(reg_addr, start_method):
    '''
    A holder whose connection drops loses the lock at once and is refused
    from then on; a holder that released normally may lock again, and
    other actors are not affected.
    '''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method), debug_mode=True,
            ) as an:
                dropper = await an.start_actor('dropper', enable_modules=[__name__])
                other = await an.start_actor('other', enable_modules=[__name__])
                assert await dropper.run(take_tty_lock, hold=0)
                assert await dropper.run(try_the_lock) == 'locked'
                assert await dropper.run(take_then_drop)
                await wait_until(lambda: not root_lock().locked(), 'freed')
                outcome = await dropper.run(try_the_lock)
                assert outcome.startswith('refused'), outcome
                assert not root_lock().locked()
                assert await other.run(try_the_lock) == 'locked'
                await an.cancel()

    trio.run(main)


async def lock_once_cancelled(path: str) -> None:
    '''Sleep until cancelled, then (shielded) try the lock; note the outcome in `path`.'''
    from pathlib import Path
    Path(f'{path}.started').touch()
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            Path(path).write_text(await try_the_lock())


def test_the_root_refuses_an_actor_it_is_cancelling(reg_addr, start_method, tmp_path):
    '''
    An actor the root asked to cancel wants the lock while it cancels
    (a pause or crash REPL in a `finally`): refused, a REPL there would be
    torn down under the user.
    '''
    note = tmp_path / 'outcome'

    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method), debug_mode=True,
            ) as an:
                victim = await an.start_actor('victim', enable_modules=[__name__])
                holders: list[str] = []
                async with trio.open_nursery() as tn:
                    async def track() -> None:
                        while True:
                            if (name := holder_name()) and name not in holders:
                                holders.append(name)
                            await trio.sleep(0.005)

                    async def run_victim() -> None:
                        try:
                            await victim.run(lock_once_cancelled, path=str(note))
                        except Exception:
                            pass  # cancelled: that is the point

                    tn.start_soon(track)
                    tn.start_soon(run_victim)
                    await wait_until(
                        lambda: (tmp_path / 'outcome.started').exists(), 'victim running',
                    )
                    await victim.cancel_actor(timeout=TEST_BOUND / 3)
                    await wait_until(note.exists, 'victim noted its outcome')
                    tn.cancel_scope.cancel()
                assert note.read_text().startswith('refused'), note.read_text()
                assert 'victim' not in holders
                assert not root_lock().locked()
                await an.cancel()

    trio.run(main)


def test_a_queued_request_leaves_the_queue_when_its_actor_is_cancelled(
    reg_addr, start_method,
):
    '''
    An actor waiting in the root's queue for the lock is cancelled: its
    request leaves the queue (it is not handed the lock once the holder is
    done), and cancelling it does not wait for the lock it never got.
    '''
    async def main():
        with trio.fail_after(TEST_BOUND):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method), debug_mode=True,
            ) as an:
                holder = await an.start_actor('holder', enable_modules=[__name__])
                queued = await an.start_actor('queued', enable_modules=[__name__])
                holders: list[str] = []
                async with trio.open_nursery() as tn:
                    async def track() -> None:
                        while True:
                            if (name := holder_name()) and name not in holders:
                                holders.append(name)
                            await trio.sleep(0.005)

                    async def run_quietly(portal, func, **kwargs) -> None:
                        try:
                            await portal.run(func, **kwargs)
                        except Exception:
                            pass  # cancelled: that is the point

                    tn.start_soon(track)
                    tn.start_soon(partial(run_quietly, holder, take_tty_lock, hold=None))
                    await wait_until(lambda: holder_name() == 'holder', 'held')
                    tn.start_soon(partial(run_quietly, queued, try_the_lock))
                    await wait_until(lambda: len(root_lock()._waiters) == 1, 'queued')
                    assert await queued.cancel_actor(timeout=TEST_BOUND / 3)
                    await wait_until(lambda: not root_lock()._waiters, 'left the queue')
                    assert holder_name() == 'holder'
                    await holder.cancel_actor(timeout=TEST_BOUND / 3)
                    await wait_until(lambda: not root_lock().locked(), 'freed')
                    tn.cancel_scope.cancel()
                assert holders == ['holder']
                await an.cancel()

    trio.run(main)
