'''
`tractor.trionics` helpers: `gather_contexts`, `maybe_open_context`,
`maybe_open_nursery`, `maybe_raise_from_masking_exc`,
`start_or_cancel`, `supervise_run_process` and `patches`.

Most need no actor runtime and run in plain trio; the per-actor cache and
the boot-time patches are checked inside child actors on every backend.
'''
from __future__ import annotations

import logging
import subprocess
import sys
from contextlib import asynccontextmanager

import pytest
import trio

import tractor
from tractor._testing import nursery_kwargs
from tractor.trionics import (
    gather_contexts,
    maybe_open_context,
    maybe_open_nursery,
    maybe_raise_from_masking_exc,
    patches,
    start_or_cancel,
    supervise_run_process,
)
from tractor.trionics import _mngrs

BOUND: float = 10


class Resource:
    '''An async resource that counts how often it was entered and exited.'''

    def __init__(self) -> None:
        self.entered = 0
        self.exited = 0

    @asynccontextmanager
    async def open(self, value: int = 0, delay: float = 0.05):
        self.entered += 1
        await trio.sleep(delay)
        try:
            yield ('res', value, self.entered)
        finally:
            await trio.sleep(delay)
            self.exited += 1


# ---- gather_contexts / maybe_open_nursery ----

def test_gather_contexts_enters_all_concurrently_in_order():
    entered: list[int] = []
    exited: list[int] = []

    @asynccontextmanager
    async def slow(index: int, delay: float):
        await trio.sleep(delay)
        entered.append(index)
        try:
            yield index * 10
        finally:
            exited.append(index)

    async def main():
        with trio.fail_after(BOUND):
            start = trio.current_time()
            async with gather_contexts(
                slow(i, delay) for i, delay in enumerate([0.3, 0.1, 0.2])
            ) as values:
                took = trio.current_time() - start
                assert values == (0, 10, 20)
                # entered in parallel: as long as the slowest, not the sum
                assert took < 0.5
                assert entered == [1, 2, 0]
                assert exited == []
            assert sorted(exited) == [0, 1, 2]

    trio.run(main)


def test_gather_contexts_errors():
    @asynccontextmanager
    async def broken():
        raise ValueError('cannot enter')
        yield

    @asynccontextmanager
    async def fine():
        yield 1

    async def main():
        with trio.fail_after(BOUND):
            with pytest.raises(ValueError, match='no context managers'):
                async with gather_contexts([]):
                    pass
            # a failed enter raises as itself, not wrapped in a group
            with pytest.raises(ValueError, match='cannot enter'):
                async with gather_contexts([fine(), broken()]):
                    raise AssertionError('body must not run')

    trio.run(main)


def test_maybe_open_nursery():
    async def main():
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as outer:
                async with maybe_open_nursery(outer) as tn:
                    assert tn is outer
            async with maybe_open_nursery(shield=True) as tn:
                assert tn is not outer
                assert tn.cancel_scope.shield

    trio.run(main)


# ---- maybe_open_context ----

def test_maybe_open_context_shares_one_entry_per_key():
    res = Resource()
    hits: list[tuple[bool, object]] = []

    async def user(value: int, hold: float) -> None:
        async with maybe_open_context(
            res.open, kwargs={'value': value}, tn=tn,
        ) as (cache_hit, got):
            hits.append((cache_hit, got))
            await trio.sleep(hold)

    async def main():
        nonlocal tn
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as tn:
                async with trio.open_nursery() as users:
                    for hold in (0.2, 0.3, 0.1):
                        users.start_soon(user, 1, hold)
                    users.start_soon(user, 2, 0.1)
            assert res.entered == 2
            assert res.exited == 2
            key1 = [got for hit, got in hits if got[1] == 1]
            assert len(set(key1)) == 1 and len(key1) == 3
            assert sorted(hit for hit, got in hits if got[1] == 1) == [False, True, True]
            # the last user left: the next one enters a fresh instance
            async with trio.open_nursery() as tn:
                await user(1, 0)
            assert hits[-1] == (False, ('res', 1, 3))
            assert not _mngrs._cache and not _mngrs._locks

    tn = None
    trio.run(main)


def test_maybe_open_context_key_and_failures():
    attempts = 0

    @asynccontextmanager
    async def flaky(name: str, fail: bool):
        nonlocal attempts
        attempts += 1
        if fail and attempts == 1:
            raise OSError('first enter fails')
        try:
            yield name
        finally:
            if name == 'bad-exit':
                raise KeyError('exit failed')

    async def main():
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as tn:
                # a failed enter raises to its user and leaves no entry
                with pytest.raises(OSError, match='first enter fails'):
                    async with maybe_open_context(
                        flaky, {'name': 'a', 'fail': True}, tn=tn,
                    ):
                        pass
                assert not _mngrs._cache
                async with maybe_open_context(
                    flaky, {'name': 'a', 'fail': True}, tn=tn,
                ) as (hit, value):
                    assert (hit, value) == (False, 'a')

                # a callable key picks what identifies an entry
                async with (
                    maybe_open_context(
                        flaky, {'name': 'k', 'fail': False}, tn=tn,
                        key=lambda name, fail: name,
                    ) as first,
                    maybe_open_context(
                        flaky, {'name': 'k', 'fail': True}, tn=tn,
                        key=lambda name, fail: name,
                    ) as second,
                ):
                    assert first == (False, 'k') and second == (True, 'k')

                # the resource's exit error reaches its last user, and
                # replaces the cancellation that user was leaving with
                with trio.CancelScope() as cs:
                    with pytest.raises(KeyError, match='exit failed'):
                        async with maybe_open_context(
                            flaky, {'name': 'bad-exit', 'fail': False}, tn=tn,
                        ):
                            cs.cancel()
                            await trio.sleep_forever()
                assert not _mngrs._cache

            # a nursery that does not enclose the caller is refused
            async with trio.open_nursery() as sibling:
                pass
            async with trio.open_nursery() as tn:
                async def in_child():
                    with pytest.raises(RuntimeError, match='enclose'):
                        async with maybe_open_context(
                            flaky, {'name': 'x', 'fail': False}, tn=sibling,
                        ):
                            pass
                tn.start_soon(in_child)

    trio.run(main)


def test_maybe_open_context_needs_runtime_or_nursery():
    async def main():
        with pytest.raises(tractor._exceptions.NoRuntime):
            async with maybe_open_context(Resource().open):
                pass

    trio.run(main)


# ---- maybe_raise_from_masking_exc / start_or_cancel ----

def test_maybe_raise_from_masking_exc_unmasks():
    async def masked_by_cancel(unmask: bool, **kwargs):
        with trio.CancelScope() as cs:
            async with maybe_raise_from_masking_exc(**kwargs) as box:
                try:
                    raise ValueError('the real error')
                finally:
                    cs.cancel()
                    if unmask:
                        # a checkpoint in a cancelled scope masks it
                        await trio.sleep(1)
        return cs, box

    async def main():
        with trio.fail_after(BOUND):
            # without the helper, the scope swallows the error for good
            with trio.CancelScope() as cs:
                try:
                    raise ValueError('lost')
                finally:
                    cs.cancel()
                    await trio.sleep(1)
            assert cs.cancelled_caught

            with pytest.raises(ValueError, match='the real error') as info:
                await masked_by_cancel(True)
            assert isinstance(info.value.__cause__, trio.Cancelled)
            assert any('hidden by the `Cancelled`' in n for n in info.value.__notes__)

            # reported only: the cancellation goes on, the box tells
            cs, box = await masked_by_cancel(True, raise_unmasked=False)
            assert cs.cancelled_caught
            assert isinstance(box.value, ValueError)

            # nothing masked: plain errors pass untouched
            with pytest.raises(ValueError, match='the real error'):
                await masked_by_cancel(False)

            with pytest.raises(ValueError, match='tuple'):
                async with maybe_raise_from_masking_exc(unmask_from=trio.Cancelled):
                    pass

    trio.run(main)


async def _swallows_cancel(task_status=trio.TASK_STATUS_IGNORED):
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        return


async def _starts(task_status=trio.TASK_STATUS_IGNORED):
    task_status.started('ready')
    await trio.sleep_forever()


def test_start_or_cancel():
    async def main():
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as tn:
                assert await start_or_cancel(tn, _starts) == 'ready'

                with trio.CancelScope() as cs:
                    cs.cancel()
                    await start_or_cancel(tn, _swallows_cancel)
                # the caller saw its own cancellation, which its scope caught
                assert cs.cancelled_caught

                # not cancelled: trio's error about `started()` stays
                async def returns_early(task_status=trio.TASK_STATUS_IGNORED):
                    return
                with pytest.raises(RuntimeError, match='started'):
                    await start_or_cancel(tn, returns_early)
                tn.cancel_scope.cancel()

    trio.run(main)


def test_patches_apply_all():
    async def main():
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as tn:
                with trio.CancelScope() as cs:
                    cs.cancel()
                    with pytest.raises(RuntimeError, match='started'):
                        await tn.start(_swallows_cancel)
                applied = patches.apply_all()
                try:
                    assert applied == ['nursery_start_cancelled']
                    assert patches.apply_all() == applied
                    with trio.CancelScope() as cs:
                        cs.cancel()
                        await tn.start(_swallows_cancel)
                    assert cs.cancelled_caught
                    assert await tn.start(_starts) == 'ready'
                finally:
                    patches.revert_all()
                tn.cancel_scope.cancel()

    trio.run(main)


# ---- supervise_run_process ----

def test_supervise_run_process(caplog):
    py = sys.executable

    async def main():
        with trio.fail_after(BOUND):
            proc = await supervise_run_process(
                [py, '-c', 'print("line one"); print("line two")'],
                relay_stdout=True, label='echoer',
            )
            assert proc.returncode == 0

            with pytest.raises(subprocess.CalledProcessError) as info:
                await supervise_run_process(
                    [py, '-c', 'import sys; sys.stderr.write("boom here\\n"); sys.exit(3)'],
                )
            assert info.value.returncode == 3
            assert 'boom here' in info.value.stderr
            assert any('boom here' in note for note in info.value.__notes__)

            # started in a nursery: the caller gets the process, and a
            # cancellation kills it
            async with trio.open_nursery() as tn:
                proc = await tn.start(
                    supervise_run_process, [py, '-c', 'import time; time.sleep(60)'],
                )
                assert proc.returncode is None
                tn.cancel_scope.cancel()
            assert proc.returncode is not None and proc.returncode != 0

    with caplog.at_level(logging.getLevelName('IO'), logger='tractor'):
        trio.run(main)
    relayed = [r.getMessage() for r in caplog.records]
    assert '[echoer stdout] line one' in relayed
    assert '[echoer stdout] line two' in relayed


# ---- inside actors, on every backend ----

_child_res = Resource()


async def share_in_actor(users: int) -> dict:
    '''Several tasks of this actor share one cached resource.'''
    hits: list[bool] = []

    async def user() -> None:
        async with maybe_open_context(
            _child_res.open, kwargs={'value': 7},
        ) as (cache_hit, value):
            assert value[:2] == ('res', 7)
            hits.append(cache_hit)
            await trio.sleep(0.1)

    async with trio.open_nursery() as tn:
        for _ in range(users):
            tn.start_soon(user)
    return {
        'hits': sorted(hits),
        'entered': _child_res.entered,
        'exited': _child_res.exited,
        'patches': sorted(patches._applied),
    }


def test_maybe_open_context_in_actor(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(**nursery_kwargs(reg_addr, start_method)) as an:
                portal = await an.start_actor('sharer', enable_modules=[__name__])
                first = await portal.run(share_in_actor, users=4)
                assert first == {
                    'hits': [False, True, True, True],
                    'entered': 1,
                    'exited': 1,
                    # every child applies the trio patches at boot
                    'patches': ['nursery_start_cancelled'],
                }
                # left by its last user, the next one enters it anew
                second = await portal.run(share_in_actor, users=2)
                assert second['hits'] == [False, True]
                assert second['entered'] == 2 and second['exited'] == 2
                await portal.cancel_actor()
        # the root is nobody's child: its trio stays unpatched
        assert not patches._applied

    trio.run(main)
