'''
A trio task paired with an asyncio task: `LinkedTaskChannel`.

Both loops run in one thread (trio as a guest of asyncio, see `_host`), so
each side calls the other's non-blocking primitives directly: the asyncio
task puts into a trio memory channel, the trio task into an
`asyncio.Queue`. The pair is supervised like two tasks of one nursery:

* the asyncio task's error (or its cancellation by anything but its trio
  side) ends the trio side with that error (`AsyncioCancelled`);
* the trio side's error or cancellation is thrown into the asyncio task
  as `TrioCancelled`, a normal exit of an `open_channel_from()` block as
  `TrioTaskExited`, and the trio side waits (bounded) for the asyncio
  task to end before going on, so no asyncio task outlives its trio side.
'''
from __future__ import annotations

import asyncio
import inspect
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
    Callable,
)

import trio

from tractor import log
from tractor._exceptions import (
    AsyncioCancelled,
    AsyncioRuntimeTranslationError,
    AsyncioTaskExited,
    TrioCancelled,
    TrioTaskExited,
)
from tractor.devx._greenback import import_greenback
from tractor.runtime import _state
from tractor.trionics import (
    BroadcastReceiver,
    broadcast_receiver,
)

logger = log.get_logger()

# how long an asyncio task gets to end after being told its trio side
# ended, and again after a plain `Task.cancel()`, before the trio side
# gives up on it
AIO_EXIT_GRACE: float = 1.0

# queued to the asyncio side once the trio side closed the channel
_TRIO_CLOSED = object()


class LinkedTaskChannel(trio.abc.Channel):
    '''
    The two ends of a trio task paired with an asyncio task.

    trio side: `await send(x)`, `await receive()` (and `async for`),
    `subscribe()`, `aclose()`, `closed()`, `cancel_asyncio_task()`,
    `await wait_for_result()`.

    asyncio side: `await get()`, `send_nowait(x)`, `started_nowait(x)`.
    '''

    def __init__(
        self,
        qsize: int,
        suppress_graceful_exits: bool = True,
    ) -> None:
        self._to_trio, self._from_aio = trio.open_memory_channel(qsize)
        self._to_aio: asyncio.Queue = asyncio.Queue()
        self._aio_task: asyncio.Task|None = None
        self._suppress_graceful_exits = suppress_graceful_exits

        # the asyncio side's outcome, once its task is done
        self._aio_done = trio.Event()
        self._aio_result: Any = None
        self._aio_err: BaseException|None = None
        # whether `_aio_err` reached trio code already
        self._aio_err_raised: bool = False

        self._started = False
        self._first: Any = None
        self._started_or_done = trio.Event()

        # what the asyncio task was told when its trio side ended
        self._trio_exit: TrioCancelled|TrioTaskExited|None = None
        self._trio_closed = False
        # the `open_channel_from()` body: cancelled when the asyncio task
        # fails while no trio task is receiving from it
        self._trio_scope: trio.CancelScope|None = None
        self._scope_cancelled_for_aio_err = False
        self._receivers: int = 0
        self._broadcaster: BroadcastReceiver|None = None

    def __repr__(self) -> str:
        name = self._aio_task.get_name() if self._aio_task is not None else None
        return f'<LinkedTaskChannel aio_task={name!r}>'

    # -- trio side --
    async def send(self, item: Any) -> None:
        '''Queue `item` for the asyncio task's `get()`.'''
        if self._trio_closed:
            raise trio.ClosedResourceError('this channel was closed')
        if self._aio_done.is_set():
            self._raise_aio_error()
            raise trio.BrokenResourceError(
                f'the asyncio task {self._aio_name()} has returned'
            )
        self._to_aio.put_nowait(item)
        await trio.lowlevel.checkpoint()

    async def receive(self) -> Any:
        '''
        The next value the asyncio task sent. Once it has ended: its error
        (`AsyncioCancelled` if it was cancelled), or, if it returned,
        `trio.EndOfChannel` (`AsyncioTaskExited` when the channel was
        opened with `suppress_graceful_exits=False`).
        '''
        if self._trio_closed:
            raise trio.ClosedResourceError('this channel was closed')
        self._receivers += 1
        try:
            return await self._from_aio.receive()
        except trio.EndOfChannel:
            pass
        finally:
            self._receivers -= 1
        # the asyncio task has ended and everything it sent was received
        self._raise_aio_error()
        if self._trio_exit is not None or self._suppress_graceful_exits:
            raise trio.EndOfChannel
        raise AsyncioTaskExited(
            f'the asyncio task {self._aio_name()} returned '
            f'{self._aio_result!r} while its trio side was receiving'
        )

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[BroadcastReceiver]:
        '''
        A broadcast copy of this channel for one of several local trio
        tasks: each subscriber receives every value that arrives after it
        joined (and `send()` still goes to the asyncio task).
        '''
        if self._broadcaster is None:
            self._broadcaster = broadcast_receiver(
                self, self._from_aio.statistics().max_buffer_size,
            )
        async with self._broadcaster.subscribe() as sub:
            sub.send = self.send
            yield sub

    async def aclose(self) -> None:
        '''
        Close the trio side: it sends and receives no more, and the
        asyncio task's `get()` raises `TrioTaskExited` once it has taken
        what was sent before.
        '''
        if not self._trio_closed:
            self._trio_closed = True
            self._to_aio.put_nowait(_TRIO_CLOSED)
            # the asyncio side's `send_nowait()` now fails
            await self._from_aio.aclose()
        await trio.lowlevel.checkpoint()

    def closed(self) -> bool:
        '''Whether the trio side closed the channel.'''
        return self._trio_closed

    def cancel_asyncio_task(self, msg: str = '') -> None:
        '''Cancel the asyncio task (the trio side then gets `AsyncioCancelled`).'''
        if self._aio_task is not None and not self._aio_task.done():
            self._aio_task.cancel(msg or None)

    async def wait_for_result(self) -> Any:
        '''
        Wait for the asyncio task to end: its return value, or its error
        (`AsyncioCancelled` if it was cancelled).
        '''
        await self._aio_done.wait()
        self._raise_aio_error()
        return self._aio_result

    # -- asyncio side --
    async def get(self) -> Any:
        '''The next value the trio side sent.'''
        self._check_trio_alive()
        item = await self._to_aio.get()
        if item is _TRIO_CLOSED:
            # later `get()`s end the same way
            self._to_aio.put_nowait(_TRIO_CLOSED)
            raise TrioTaskExited('the trio side closed the channel')
        return item

    def send_nowait(self, item: Any) -> None:
        '''Send `item` to the trio side (`asyncio.QueueFull` if it lags `qsize` behind).'''
        self._check_trio_alive()
        try:
            self._to_trio.send_nowait(item)
        except trio.WouldBlock:
            raise asyncio.QueueFull(
                f'the trio side has not received the last '
                f'{self._from_aio.statistics().max_buffer_size} values'
            ) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise TrioTaskExited('the trio side closed the channel') from None

    def started_nowait(self, value: Any = None) -> None:
        '''Hand `value` to `open_channel_from()`, which yields it as `first`.'''
        self._check_trio_alive()
        if self._started:
            raise RuntimeError('`started_nowait()` was already called')
        self._started = True
        self._first = value
        self._started_or_done.set()

    def _check_trio_alive(self) -> None:
        if self._trio_exit is not None:
            exc = type(self._trio_exit)(*self._trio_exit.args)
            raise exc from self._trio_exit.__cause__

    # -- the pair's lifecycle --
    def _aio_name(self) -> str:
        return repr(self._aio_task.get_name()) if self._aio_task is not None else '?'

    def _raise_aio_error(self) -> None:
        if self._aio_err is not None:
            self._aio_err_raised = True
            raise self._aio_err

    async def _run_aio_side(self, coro: Any) -> None:
        '''The asyncio task: run the target, record how it ended.'''
        try:
            self._aio_result = await coro
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            # anything, `KeyboardInterrupt`/`SystemExit` included, is the
            # trio side's to raise: out of an asyncio task those would
            # crash the host loop under the trio guest
            if not isinstance(err, (TrioCancelled, TrioTaskExited)):
                self._aio_err = err

    def _on_aio_done(self, task: asyncio.Task) -> None:
        '''The asyncio task ended: wake the trio side.'''
        if task.cancelled() and self._trio_exit is None:
            try:
                task.result()
            except asyncio.CancelledError as cancelled:
                err = AsyncioCancelled(
                    f'the asyncio task {self._aio_name()} was cancelled'
                    + (f': {cancelled.args[0]}' if cancelled.args else '')
                )
                err.__cause__ = cancelled
                self._aio_err = err
        self._to_trio.close()
        self._aio_done.set()
        self._started_or_done.set()
        if not self._receivers:
            self._interrupt_body_on_error()

    def _supervise_body(self, scope: trio.CancelScope) -> None:
        '''
        From now on an asyncio failure interrupts the `open_channel_from()`
        body running in `scope` (before, entering the block raises it).
        '''
        self._trio_scope = scope
        if self._aio_done.is_set():
            self._interrupt_body_on_error()

    def _interrupt_body_on_error(self) -> None:
        if (
            self._aio_err is not None
            and self._trio_exit is None
            and self._trio_scope is not None
        ):
            # nobody is receiving to be told: interrupt the trio side
            self._scope_cancelled_for_aio_err = True
            self._trio_scope.cancel()

    async def _wait_started(self) -> Any:
        await self._started_or_done.wait()
        if self._started:
            return self._first
        self._raise_aio_error()
        raise AsyncioTaskExited(
            f'the asyncio task {self._aio_name()} returned '
            f'{self._aio_result!r} before calling `started_nowait()`'
        )

    async def _end_aio_side(self, told: TrioCancelled|TrioTaskExited) -> None:
        '''
        The trio side is ending: throw `told` into the asyncio task at the
        await it is blocked on and wait for it to end, bounded. Shielded.
        '''
        task = self._aio_task
        if self._trio_exit is None:
            self._trio_exit = told
        if task is None or task.done():
            return
        with trio.CancelScope(shield=True):
            _throw_into(task, told)
            with trio.move_on_after(AIO_EXIT_GRACE):
                await self._aio_done.wait()
            if not task.done():
                logger.warning(
                    f'asyncio task {self._aio_name()} did not end within '
                    f'{AIO_EXIT_GRACE}s of {type(told).__name__}; cancelling it'
                )
                task.cancel()
                with trio.move_on_after(AIO_EXIT_GRACE):
                    await self._aio_done.wait()
        if not task.done():
            raise AsyncioRuntimeTranslationError(
                f'The asyncio task {self._aio_name()} did not end after its trio '
                f'side did ({type(told).__name__}, then a cancel); abandoned'
            )


def _throw_into(task: asyncio.Task, exc: BaseException) -> None:
    '''
    Raise `exc` in `task` at the await it is blocked on, by failing the
    future it waits for; cancel it instead when there is no such future
    or failing it would orphan tasks (a task group's join, `gather()`).
    '''
    waiter = getattr(task, '_fut_waiter', None)
    if (
        waiter is not None
        and type(waiter) is asyncio.Future
        and not waiter.done()
        and not _joining_a_task_group(task)
    ):
        waiter.set_exception(exc)
    else:
        task.cancel(f'{type(exc).__name__}: {exc}')


def _joining_a_task_group(task: asyncio.Task) -> bool:
    '''Whether `task` waits in a `TaskGroup` exit (failing it leaks children).'''
    awaitable: Any = task.get_coro()
    while awaitable is not None:
        frame = getattr(awaitable, 'cr_frame', None) or getattr(awaitable, 'ag_frame', None)
        if frame is not None and frame.f_globals.get('__name__') == 'asyncio.taskgroups':
            return True
        awaitable = (
            getattr(awaitable, 'cr_await', None)
            or getattr(awaitable, 'ag_await', None)
            or getattr(awaitable, 'gi_yieldfrom', None)
        )
    return False


def _injected(
    target: Callable,
    chan: LinkedTaskChannel,
    legacy_started: bool,
) -> dict[str, Any]:
    '''The channel parameters `target` declares, bound to `chan`.'''
    params = inspect.signature(target).parameters
    kwargs: dict[str, Any] = {}
    if 'chan' in params:
        kwargs['chan'] = chan
    if 'to_trio' in params:
        kwargs['to_trio'] = _LegacyToTrio(chan, legacy_started)
    if 'from_trio' in params:
        kwargs['from_trio'] = chan._to_aio
    return kwargs


class _LegacyToTrio:
    '''
    The `to_trio` parameter of the older API: `send_nowait(x)` sends to
    the trio side, the first one being the `started` value.
    '''

    def __init__(self, chan: LinkedTaskChannel, first_is_started: bool) -> None:
        self._chan = chan
        self._first_is_started = first_is_started

    def send_nowait(self, item: Any) -> None:
        if self._first_is_started and not self._chan._started:
            self._chan.started_nowait(item)
        else:
            self._chan.send_nowait(item)


def start_pair(
    target: Callable,
    target_kwargs: dict[str, Any],
    *,
    qsize: int,
    suppress_graceful_exits: bool = True,
    for_channel: bool = False,
) -> LinkedTaskChannel:
    '''Start `target(**target_kwargs)` as an asyncio task linked to a new channel.'''
    if inspect.iscoroutine(target) or not callable(target):
        raise TypeError(
            f'{target!r} is not an async function: pass the function and its '
            'kwargs, not a coroutine object'
        )
    chan = LinkedTaskChannel(qsize, suppress_graceful_exits)
    kwargs = dict(target_kwargs)
    kwargs.update(_injected(target, chan, legacy_started=for_channel))
    coro = target(**kwargs)
    if not inspect.iscoroutine(coro):
        if inspect.isawaitable(coro):
            coro = _await(coro)
        else:
            raise TypeError(f'{target!r} is not an async function (returned {coro!r})')
    loop = asyncio.get_running_loop()
    task = chan._aio_task = loop.create_task(
        chan._run_aio_side(coro),
        name=getattr(target, '__qualname__', repr(target)),
    )
    task.add_done_callback(chan._on_aio_done)
    if _state._runtime_vars.get('use_greenback'):
        # `maybe_enable_greenback=True` gives every trio task a portal; the
        # asyncio tasks we start get one too, so sync code they call can
        # `pause_from_sync()`/`breakpoint()` (bestowed before its first
        # step: usable from the start, no extra trip through the loop)
        import_greenback().bestow_portal(task)
    return chan


async def _await(awaitable: Any) -> Any:
    return await awaitable
