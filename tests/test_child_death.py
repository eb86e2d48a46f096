'''
Children that die unexpectedly or refuse to die, on every process-based
spawn backend: the error the nursery raises says how the child ended
(exit code or signal), a child ignoring SIGTERM is killed, and nothing is
left behind (no zombie, no live process).

'''
import os
import signal
import time
from functools import partial

import psutil
import pytest
import trio
import tractor
from tractor._exceptions import ActorFailure
from tractor._testing import nursery_kwargs

pytestmark = pytest.mark.skipon_spawn_backend(
    'subint',
    reason='exit codes and signals are process-level facts',
)


# ---- functions run inside child actors ----

async def exit_with(code: int) -> None:
    await trio.sleep(0.1)
    os._exit(code)


async def signal_self(signum: int) -> None:
    await trio.sleep(0.1)
    os.kill(os.getpid(), signum)
    await trio.sleep_forever()


async def get_pid() -> int:
    return os.getpid()


async def ignore_sigterm_and_block(seconds: float) -> None:
    # blocks the child's trio loop, so it cannot even answer a cancel
    # request: only a signal can end it, and SIGTERM is ignored
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


# ---- helpers ----

def gone(pid: int) -> bool:
    '''Neither running nor a zombie: reaped.'''
    return not psutil.pid_exists(pid)


def leaves(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [leaf for sub in err.exceptions for leaf in leaves(sub)]
    return [err]


async def run_dying_child(reg_addr, start_method, fn, **kwargs):
    '''
    Run `fn` in a `run_in_actor` child which kills itself; return the
    error the nursery raised and the child's pid.
    '''
    pid: int|None = None
    with trio.fail_after(20):
        try:
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.run_in_actor(fn, **kwargs)
                pid = portal.chan.aid.pid
        except ActorFailure as err:
            return err, pid
    pytest.fail(f'the nursery did not raise although {fn.__name__} died')


# ---- tests ----

@pytest.mark.parametrize('code', [3, 0])
def test_exit_code_in_error(reg_addr, start_method, code):
    '''
    A child exiting with `os._exit(code)` before returning its result:
    the nursery's error names the child and its exit code; it is reaped.

    '''
    async def main():
        return await run_dying_child(
            reg_addr, start_method, exit_with, code=code,
        )

    err, pid = trio.run(main)
    assert f'exited with code {code}' in str(err)
    assert 'exit_with' in str(err)
    assert gone(pid)


@pytest.mark.parametrize(
    'signum',
    [signal.SIGKILL, signal.SIGTERM],
    ids=lambda sig: sig.name,
)
def test_signal_in_error(reg_addr, start_method, signum):
    '''
    A child killed by a signal: the nursery's error names the signal.

    '''
    async def main():
        return await run_dying_child(
            reg_addr, start_method, signal_self, signum=signum,
        )

    err, pid = trio.run(main)
    assert f'was killed by {signum.name}' in str(err)
    assert gone(pid)


def test_daemon_killed_mid_call_is_reaped(reg_addr, start_method):
    '''
    A daemon SIGKILLed from outside while its parent waits on a call into
    it: the call errors promptly and the process does not linger.

    '''
    async def main() -> tuple[BaseException|None, int]:
        pid = -1
        try:
            with trio.fail_after(20):
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    portal = await an.start_actor(
                        'victim', enable_modules=[__name__],
                    )
                    pid = await portal.run(get_pid)
                    os.kill(pid, signal.SIGKILL)
                    await portal.run(get_pid)
        except trio.TooSlowError:
            raise
        except BaseException as err:
            return err, pid
        return None, pid

    err, pid = trio.run(main)
    assert err is not None, 'a call into a killed actor succeeded'
    assert any(
        isinstance(leaf, (tractor.TransportClosed, ActorFailure))
        for leaf in leaves(err)
    ), repr(err)
    assert gone(pid)


def test_stubborn_child_is_killed(reg_addr, start_method):
    '''
    The teardown ladder: a child which can neither process the cancel
    request (its loop is blocked) nor be terminated (it ignores SIGTERM)
    is killed, well before it would have exited by itself.

    '''
    block_for: float = 30

    async def main() -> tuple[int, float]:
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'stubborn', enable_modules=[__name__],
                )
                pid = await portal.run(get_pid)
                async with trio.open_nursery() as tn:
                    tn.start_soon(partial(
                        portal.run, ignore_sigterm_and_block, seconds=block_for,
                    ))
                    # let it start blocking
                    await trio.sleep(0.5)
                    start = time.monotonic()
                    await an.cancel()
                    tn.cancel_scope.cancel()
            return pid, time.monotonic() - start

    pid, took = trio.run(main)
    assert took < block_for / 2
    assert gone(pid)
