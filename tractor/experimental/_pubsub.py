'''
Legacy pub/sub over one-way streams: `@msgpub` turns an async generator
of `{topic: value}` packets into a stream endpoint that many
subscribers share. One producer task runs per `task_name`, started by
its first subscriber and cancelled when its last one leaves; each
packet is split so that every subscriber gets only its topics.
'''
from __future__ import annotations

import functools
import inspect
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
    Callable,
)

import trio

from tractor import log
from tractor._context import Context
from tractor._exceptions import TransportClosed
from tractor.msg.types import Yield
from tractor.trionics import maybe_open_context

logger = log.get_logger()


class _Subscriptions:
    '''Which subscriber (context) wants which topics, for one producer.'''

    def __init__(self) -> None:
        self.topic2ctxs: dict[str, set[Context]] = {}
        self.subscribed = trio.Event()
        self.done = trio.Event()
        self.error: BaseException|None = None

    def add(self, ctx: Context, topics: list[str]) -> None:
        for topic in topics:
            self.topic2ctxs.setdefault(topic, set()).add(ctx)
        self.subscribed.set()

    def remove(self, ctx: Context) -> None:
        for topic in list(self.topic2ctxs):
            ctxs = self.topic2ctxs[topic]
            ctxs.discard(ctx)
            if not ctxs:
                del self.topic2ctxs[topic]

    def topics(self) -> tuple[str, ...]:
        return tuple(self.topic2ctxs)


async def _produce(
    gen_func: Callable,
    subs: _Subscriptions,
    packetizer: Callable[[str, Any], dict]|None,
    kwargs: dict[str, Any],
) -> None:
    # the first packet is for the subscriber that started us
    await subs.subscribed.wait()
    try:
        async for packet in gen_func(get_topics=subs.topics, **kwargs):
            per_ctx: dict[Context, dict] = {}
            for topic, value in packet.items():
                for ctx in subs.topic2ctxs.get(topic, ()):
                    msg = per_ctx.setdefault(ctx, {})
                    msg.update(
                        packetizer(topic, value) if packetizer else {topic: value}
                    )
            for ctx, msg in per_ctx.items():
                try:
                    await ctx.chan.send(Yield(cid=ctx.cid, pld=msg))
                except TransportClosed:
                    # gone without unsubscribing: stop feeding it
                    subs.remove(ctx)
    except Exception as err:
        subs.error = err
    finally:
        subs.done.set()


@asynccontextmanager
async def _open_producer(
    gen_func: Callable,
    task_name: str|None,
    packetizer: Callable|None,
    kwargs: dict[str, Any],
) -> AsyncIterator[_Subscriptions]:
    subs = _Subscriptions()
    async with trio.open_nursery() as tn:
        tn.start_soon(_produce, gen_func, subs, packetizer, kwargs)
        yield subs
        tn.cancel_scope.cancel()


def msgpub(
    wrapped: Callable|None = None,
    *,
    tasks: set[str]|list[str] = {None},
) -> Callable:
    '''
    Publish what an async generator yields to many subscribers, each
    getting only the topics it asked for.

    The generator takes a `get_topics` argument (a function returning the
    topics currently subscribed to) and yields `{topic: value}` packets.
    Subscribers call it as a legacy stream::

        async with portal.open_stream_from(
            pub_func, topics=['a', 'b'], task_name='one',
        ) as stream:
            async for packet in stream: ...

    With `@msgpub(tasks=[...])` one producer runs per task name and each
    subscriber must pass one of them as `task_name`; without, a single
    producer serves all. `packetizer(topic, value) -> dict` (a call
    argument) reshapes each topic's entry of a packet. Other keyword
    arguments go to the generator when its producer starts.
    '''
    task_names = set(tasks)

    def decorate(gen_func: Callable) -> Callable:
        if not inspect.isasyncgenfunction(gen_func):
            raise TypeError(
                f'`@msgpub` needs an async generator function, got {gen_func!r}'
            )
        if 'get_topics' not in inspect.signature(gen_func).parameters:
            raise TypeError(
                f'`@msgpub` function {gen_func.__name__!r} must take a '
                '`get_topics` argument'
            )

        @functools.wraps(gen_func)
        async def publish(
            ctx: Context,
            topics: list[str],
            task_name: str|None = None,
            packetizer: Callable|None = None,
            **kwargs: Any,
        ) -> None:
            if task_name is None and task_names != {None}:
                raise TypeError(
                    f'{gen_func.__name__!r} publishes from several tasks: '
                    f'pass `task_name=` (one of {sorted(task_names)!r})'
                )
            if task_name not in task_names:
                raise TypeError(
                    f'`task_name={task_name!r}` is not one of '
                    f'{sorted(t for t in task_names if t is not None)!r} '
                    f'for {gen_func.__name__!r}'
                )
            if isinstance(topics, str) or not all(isinstance(t, str) for t in topics):
                raise TypeError(f'`topics` must be a list of str, got {topics!r}')

            async with maybe_open_context(
                _open_producer,
                kwargs={
                    'gen_func': gen_func,
                    'task_name': task_name,
                    'packetizer': packetizer,
                    'kwargs': kwargs,
                },
                key=(gen_func, task_name),
            ) as (_, subs):
                subs.add(ctx, topics)
                try:
                    await subs.done.wait()
                finally:
                    subs.remove(ctx)
                if subs.error is not None:
                    raise subs.error

        # our own signature, not the generator's: the runtime injects `ctx`
        # by looking for it there
        del publish.__wrapped__
        # a legacy stream endpoint (see `tractor.stream`)
        publish._tractor_stream_function = True
        return publish

    if wrapped is not None:
        return decorate(wrapped)
    return decorate
