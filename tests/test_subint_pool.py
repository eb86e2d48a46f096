'''
The `subint` backend's warm pool (`tractor.spawn._subint_pool`): spawns
run in interpreters warmed ahead, each serves one actor and is destroyed
after it, the pool fills in the background (eagerly if asked), follows
its settings, and goes with the root, Ctrl-C included, leaving no thread
and no interpreter. (How much faster a warm spawn is, `bench/run.py
--backend subint` says; nothing here is timed.)

Runs only with `--spawn-backend subint`.
'''
import os
import signal
import subprocess
import sys
import textwrap
import threading
import typing

import pytest
import trio
import tractor
from tractor.spawn import (
    _spawn,
    _subint_pool,
)
from tractor._testing import nursery_kwargs

pytestmark = pytest.mark.skipon_spawn_backend(
    *(key for key in typing.get_args(_spawn.SpawnMethodKey) if key != 'subint'),
    reason='tests of the subint backend itself (run with --spawn-backend subint)',
)


async def interp_id() -> int:
    import _interpreters
    return _interpreters.get_current()[0]


def all_interps() -> list[int]:
    import _interpreters
    return [iid for iid, *_ in _interpreters.list_all()]


def pool_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith('subint-pool')]


async def until_spares(count: int) -> list[int]:
    '''The pool's spares (ready or being warmed) once it holds `count`.'''
    while len(spares := _subint_pool.spare_ids()) < count:
        await trio.sleep(0.02)
    return spares


def test_spawn_runs_in_a_warm_spare_used_once(reg_addr, start_method):
    async def main() -> None:
        with trio.fail_after(60):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, start_method), subint_spares=1,
            ):
                async with tractor.open_nursery() as an:
                    first = await an.start_actor('first', enable_modules=[__name__])
                    first_iid = await first.run(interp_id)
                    [spare] = await until_spares(1)
                    assert spare != first_iid
                    second = await an.start_actor('second', enable_modules=[__name__])
                    # the spawn took the warm spare...
                    assert await second.run(interp_id) == spare
                    assert spare not in _subint_pool.spare_ids()
                    await first.cancel_actor()
                    # ...and the pool warms a new one, never a used one
                    [refill] = await until_spares(1)
                    assert refill not in (first_iid, spare)
                    await an.cancel()
                # each actor's interpreter went with it
                while first_iid in all_interps() or spare in all_interps():
                    await trio.sleep(0.02)

    trio.run(main)
    assert all_interps() == [0]
    assert pool_threads() == []


def test_eager_pool_fills_before_any_spawn_and_goes_with_the_root(reg_addr, start_method):
    async def main() -> list[int]:
        with trio.fail_after(60):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, start_method),
                subint_spares=2,
                subint_eager=True,
            ):
                return await until_spares(2)

    spares = trio.run(main)
    assert len(set(spares)) == 2
    assert all_interps() == [0]
    assert pool_threads() == []
    # the root's settings were its own
    assert (_subint_pool.SPARES, _subint_pool.EAGER) == (1, False) or (
        'TRACTOR_SUBINT_SPARES' in os.environ or 'TRACTOR_SUBINT_EAGER' in os.environ
    )


def test_no_spares_when_off(reg_addr, start_method):
    async def main() -> None:
        with trio.fail_after(30):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, start_method),
                subint_spares=0,
                subint_eager=True,
            ):
                async with tractor.open_nursery() as an:
                    portal = await an.start_actor('cold', enable_modules=[__name__])
                    await portal.run(interp_id)
                    await trio.sleep(0.3)
                    assert _subint_pool.spare_ids() == []
                    assert pool_threads() == []
                    await an.cancel()

    trio.run(main)
    assert all_interps() == [0]


def test_a_spawn_claims_the_spare_being_warmed(reg_addr, start_method):
    '''
    Spawns in a burst, faster than the pool fills: each takes a ready
    spare, or the one being warmed, or starts cold; all serve, and
    nothing is left.
    '''
    async def main() -> set[int]:
        with trio.fail_after(90):
            async with tractor.open_root_actor(
                **nursery_kwargs(reg_addr, start_method),
                subint_spares=1,
                subint_eager=True,
            ):
                async with tractor.open_nursery() as an:
                    portals = [
                        await an.start_actor(f'burst{i}', enable_modules=[__name__])
                        for i in range(4)
                    ]
                    iids = {await portal.run(interp_id) for portal in portals}
                    await an.cancel()
                return iids

    assert len(trio.run(main)) == 4
    assert all_interps() == [0]
    assert pool_threads() == []


SIGINT_SCRIPT = '''
import sys
import trio
import tractor


async def main(reg_addr, proto):
    async with tractor.open_root_actor(
        registry_addrs=[reg_addr], enable_transports=[proto],
        start_method='subint', subint_spares=3, subint_eager=True,
    ):
        print('READY', flush=True)
        await trio.sleep_forever()


if __name__ == '__main__':
    try:
        trio.run(main, eval(sys.argv[1]), sys.argv[2])
    except KeyboardInterrupt:
        print('GOT-KBI', flush=True)
'''


def test_ctrl_c_while_warming(tmp_path, reg_addr, tpt_proto, start_method):
    '''SIGINT as the pool warms: the root exits, nothing left behind.'''
    script = tmp_path / 'pool_sigint.py'
    script.write_text(textwrap.dedent(SIGINT_SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, str(script), repr(tuple(reg_addr)), tpt_proto],
        cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == 'READY', proc.stderr.read()[-3000:]
        os.kill(proc.pid, signal.SIGINT)
        # a hang guard, not a speed check
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert 'GOT-KBI' in out, err[-3000:]
    assert proc.returncode == 0, err[-3000:]
    assert 'remaining subinterpreters' not in err
    assert 'Traceback' not in err, err[-3000:]
