'''
The asyncio host: run an asyncio event loop in this thread with trio on
top of it as a guest (`trio.lowlevel.start_guest_run`), so both loops
share the thread and their tasks can be paired (see `_pair`).

The host loop is driven here rather than by `asyncio.run()`, whose
shutdown waits without bound for every leftover task and whose SIGINT
handler would keep trio's own from being installed: with ours, Ctrl-C
reaches trio as a `KeyboardInterrupt` at a checkpoint, exactly as in a
plain `trio.run()`, and every step of the shutdown is bounded.
'''
from __future__ import annotations

import asyncio
import os
from typing import (
    Any,
    Awaitable,
    Callable,
)

import outcome
import trio

from tractor import log
from tractor._exceptions import AsyncioRuntimeTranslationError
from tractor.runtime import _state

logger = log.get_logger()

# after the host is asked to stop, how long the guest gets to end by
# cancelling its actor gracefully, then by having its whole run cancelled
GUEST_END_GRACE: float = 3.0
# how long asyncio tasks left over once the guest ended get to finish
# after being cancelled, before the loop is closed under them
LEFTOVER_TASK_GRACE: float = 1.0


class _Guest:
    '''The host's view of its trio guest run.'''

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.done: asyncio.Future = loop.create_future()
        self.scope: trio.CancelScope|None = None
        self.token: trio.lowlevel.TrioToken|None = None

    def finished(self, result: outcome.Outcome) -> None:
        '''trio's `done_callback`: the guest run is over.'''
        if not self.done.done():
            self.done.set_result(result)

    def ask_to_end(self, graceful: bool) -> None:
        '''From the host: end the guest run, gracefully first.'''
        if self.token is None or self.done.done():
            return
        try:
            self.token.run_sync_soon(self._end, graceful)
        except trio.RunFinishedError:
            pass

    def _end(self, graceful: bool) -> None:
        # runs in the guest
        actor = _state.current_actor(err_on_no_runtime=False)
        if (
            graceful
            and actor is not None
            and not actor.is_root
            and actor._root_tn is not None
            and not actor._cancel_called
        ):
            # a subactor cancels its runtime in order (remote tasks, IPC,
            # `lifetime_stack`) and its parent sees a clean exit
            actor.cancel_soon()
        elif self.scope is not None:
            # a root (or plain trio code) is cancelled from the top, as
            # Ctrl-C would: its nurseries cancel their children first
            self.scope.cancel()


async def _guest_main(
    guest: _Guest,
    trio_main: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
) -> Any:
    with trio.CancelScope() as guest.scope:
        return await trio_main(*args)
    # cancelled by the host: there is no result
    return None


async def _host_main(
    guest: _Guest,
    trio_main: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    pump_delay: float,
) -> outcome.Outcome:
    trio.lowlevel.start_guest_run(
        _guest_main, guest, trio_main, args,
        run_sync_soon_threadsafe=guest.loop.call_soon_threadsafe,
        run_sync_soon_not_threadsafe=guest.loop.call_soon,
        done_callback=guest.finished,
        # a SIGINT landing in asyncio code must not raise there: trio
        # raises it in its main task at the next checkpoint
        restrict_keyboard_interrupt_to_checkpoints=True,
        # uvloop's loop owns the signal wakeup fd while it runs (asyncio's
        # only takes it for `add_signal_handler()`, which the host never
        # calls): trio must then leave it be
        host_uses_signal_set_wakeup_fd=_is_uvloop(guest.loop),
    )
    guest.token = trio.lowlevel.current_trio_token()
    # each time the host is cancelled, or the guest does not end in time
    # after that: first a graceful actor cancel, then the whole run
    escalation = iter((True, False))
    asked = False
    while not guest.done.done():
        try:
            if asked:
                await asyncio.wait_for(asyncio.shield(guest.done), GUEST_END_GRACE)
            else:
                await asyncio.shield(guest.done)
        except asyncio.CancelledError:
            # someone cancelled the host: the guest still has to end
            # before the loop may stop, or its teardown would never run
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if not asked:
                asked = True
                guest.ask_to_end(next(escalation))
        except TimeoutError:
            graceful = next(escalation, None)
            if graceful is None:
                logger.error(
                    'The trio guest run did not end within '
                    f'{2 * GUEST_END_GRACE}s of its asyncio host being '
                    'cancelled; still waiting for it'
                )
                asked = False
            else:
                guest.ask_to_end(graceful)
    if pump_delay:
        # let asyncio-side callbacks the guest's teardown scheduled run
        await asyncio.sleep(pump_delay)
    return guest.done.result()


def run_as_asyncio_guest(
    trio_main: Callable[..., Awaitable[Any]],
    *args: Any,
    _sigint_loop_pump_delay: float = 0,
) -> Any:
    '''
    Run `trio_main(*args)` as a trio guest of a new asyncio event loop in
    this thread and return (or raise) its outcome, like `trio.run()`.
    Inside, `tractor.to_asyncio.run_task()` and `open_channel_from()`
    pair trio tasks with asyncio tasks, and an actor runtime opened
    there (`open_root_actor()`) reports `is_infected_aio()`.

    Ctrl-C raises `KeyboardInterrupt` in trio at its next checkpoint, as
    with `trio.run()`. If the host itself gets cancelled, the guest is
    cancelled (a subactor's runtime through `Actor.cancel_soon()`, a root
    or plain trio code from the top) and the loop keeps running until the
    guest ended, so its teardown (`lifetime_stack` included) always runs;
    `_sigint_loop_pump_delay` seconds are then given to asyncio callbacks
    that teardown scheduled.
    '''
    if asyncio._get_running_loop() is not None:
        raise RuntimeError(
            '`run_as_asyncio_guest()` runs its own asyncio loop: it cannot be '
            'called where one is already running'
        )
    rtvs = _state._runtime_vars
    was_infected = rtvs['_is_infected_aio']
    rtvs['_is_infected_aio'] = True
    actor = _state.current_actor(err_on_no_runtime=False)
    if actor is not None:
        actor._infected_aio = True

    loop = new_host_loop()
    asyncio.set_event_loop(loop)
    guest = _Guest(loop)
    try:
        host = loop.create_task(
            _host_main(guest, trio_main, args, _sigint_loop_pump_delay),
            name='tractor-asyncio-host',
        )
        try:
            result = loop.run_until_complete(host)
        except Exception as err:
            if guest.done.done() or guest.token is None:
                raise
            # the loop stopped under a running guest (e.g. `loop.stop()`
            # in an asyncio task): end the guest before the loop goes
            _drain_guest(loop, guest)
            raise AsyncioRuntimeTranslationError(
                'The asyncio loop stopped while its trio guest was still '
                f'running: {err!r}'
            ) from err
        return result.unwrap()
    finally:
        try:
            _shutdown_loop(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            rtvs['_is_infected_aio'] = was_infected


HOST_LOOPS: tuple[str, ...] = ('auto', 'uvloop', 'asyncio')


def new_host_loop() -> asyncio.AbstractEventLoop:
    '''
    A new event loop for the host: `uvloop`'s when it is installed and
    can load here, else asyncio's own. `$TRACTOR_AIO_LOOP` picks one:
    `auto` (default), `uvloop` (an error when it cannot load) or
    `asyncio`.
    '''
    choice = os.environ.get('TRACTOR_AIO_LOOP', 'auto').strip().lower() or 'auto'
    if choice not in HOST_LOOPS:
        raise ValueError(
            f'$TRACTOR_AIO_LOOP={choice!r}: expected one of {HOST_LOOPS}'
        )
    # uvloop cannot load in a sub-interpreter, and a failed attempt there
    # would keep the main interpreter from ever loading it: never try
    if choice != 'asyncio' and not _in_subinterpreter():
        try:
            import uvloop
        except ImportError as err:
            if choice == 'uvloop':
                raise RuntimeError(
                    f'$TRACTOR_AIO_LOOP=uvloop but uvloop cannot load here: {err}'
                ) from err
        else:
            return uvloop.new_event_loop()
    elif choice == 'uvloop':
        raise RuntimeError(
            '$TRACTOR_AIO_LOOP=uvloop, but uvloop cannot load in a '
            'sub-interpreter (a `subint` actor)'
        )
    return asyncio.new_event_loop()


def _is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.partition('.')[0] == 'uvloop'


def _in_subinterpreter() -> bool:
    try:
        from concurrent import interpreters
    except ImportError:
        # before Python 3.14 tractor runs no sub-interpreters
        return False
    return interpreters.get_current().id != interpreters.get_main().id


def _drain_guest(loop: asyncio.AbstractEventLoop, guest: _Guest) -> None:
    guest.ask_to_end(graceful=False)
    try:
        loop.run_until_complete(
            asyncio.wait_for(asyncio.shield(guest.done), GUEST_END_GRACE)
        )
    except (TimeoutError, RuntimeError) as err:
        logger.error(f'The trio guest run could not be ended: {err!r}')


def _shutdown_loop(loop: asyncio.AbstractEventLoop) -> None:
    '''
    Cancel the asyncio tasks the guest left behind (each paired task has
    ended with its trio side already) and close the loop's resources,
    every step bounded: a task that ignores cancellation is abandoned
    with an error naming it instead of hanging the actor's exit.
    '''
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        loop.run_until_complete(asyncio.wait(leftovers, timeout=LEFTOVER_TASK_GRACE))
    for task in leftovers:
        if not task.done():
            logger.error(
                f'asyncio task {task.get_name()!r} ignored cancellation at '
                'shutdown and was abandoned with its loop'
            )
        elif not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler({
                'message': 'unhandled exception in an asyncio task at shutdown',
                'exception': task.exception(),
                'task': task,
            })
    try:
        loop.run_until_complete(
            asyncio.wait_for(loop.shutdown_asyncgens(), LEFTOVER_TASK_GRACE)
        )
        loop.run_until_complete(
            loop.shutdown_default_executor(timeout=LEFTOVER_TASK_GRACE)
        )
    except TimeoutError:
        logger.error('asyncio async generators did not close in time at shutdown')
