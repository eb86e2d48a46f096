'''
`tractor.experimental.msgpub`: one producer per task name fanning
`{topic: value}` packets out to many `open_stream_from()` subscribers,
each getting only its topics; and its argument checks.
'''
from __future__ import annotations

import itertools

import pytest
import trio

import tractor
from tractor._testing import nursery_kwargs
from tractor.experimental import msgpub

# `msgpub` subscribers use the legacy one-way streams
pytestmark = pytest.mark.filterwarnings(
    'ignore:`Portal.open_stream_from:DeprecationWarning'
)

_producers_started: list[str|None] = []


@msgpub(tasks=['even', 'odd'])
async def numbers(get_topics, start: int = 0):
    _producers_started.append('even' if start % 2 == 0 else 'odd')
    for i in itertools.count(start, 2):
        topics = get_topics()
        yield {topic: f'{topic}:{i}' for topic in topics}
        await trio.sleep(0.005)


@msgpub
async def ticks(get_topics, stop: int = 5):
    _producers_started.append(None)
    for i in range(stop):
        yield {'tick': i, 'tock': -i}
        await trio.sleep(0.005)
    if stop == 3:
        raise ValueError('ticker broke')


async def producers_started() -> list:
    return _producers_started


async def subscribe(portal, topics, count, **kwargs) -> list[dict]:
    got = []
    async with portal.open_stream_from(numbers, topics=topics, **kwargs) as stream:
        async for packet in stream:
            got.append(packet)
            if len(got) == count:
                break
    return got


def test_msgpub_fans_out_per_task_and_topic(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(**nursery_kwargs(reg_addr, start_method)) as an:
                portal = await an.start_actor('publisher', enable_modules=[__name__])
                results: dict[str, list[dict]] = {}

                async def sub(key, topics, task_name, start):
                    results[key] = await subscribe(
                        portal, topics, 20, task_name=task_name, start=start,
                    )

                async with trio.open_nursery() as tn:
                    tn.start_soon(sub, 'a', ['x'], 'even', 0)
                    tn.start_soon(sub, 'b', ['x', 'y'], 'even', 0)
                    tn.start_soon(sub, 'c', ['z'], 'even', 0)
                    tn.start_soon(sub, 'd', ['x'], 'odd', 1)

                # each subscriber sees only its own topics
                assert all(set(p) == {'x'} for p in results['a'])
                assert all(set(p) <= {'x', 'y'} for p in results['b'])
                assert any(set(p) == {'x', 'y'} for p in results['b'])
                assert all(set(p) == {'z'} for p in results['c'])
                # ... from the producer of its task
                for packet in results['d']:
                    assert int(packet['x'].split(':')[1]) % 2 == 1
                for packet in results['a']:
                    assert int(packet['x'].split(':')[1]) % 2 == 0
                # one producer per task name, however many subscribers
                assert sorted(await portal.run(producers_started)) == ['even', 'odd']

                # the last subscriber gone, a new one starts a new producer
                await subscribe(portal, ['x'], 2, task_name='even')
                assert sorted(await portal.run(producers_started)) == ['even', 'even', 'odd']
                await portal.cancel_actor()

    trio.run(main)


def test_msgpub_end_error_and_argument_checks(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(**nursery_kwargs(reg_addr, start_method)) as an:
                portal = await an.start_actor('publisher', enable_modules=[__name__])

                # a finite producer ends every subscriber's stream
                async with portal.open_stream_from(ticks, topics=['tick']) as stream:
                    got = [packet async for packet in stream]
                assert got == [{'tick': i} for i in range(5)]

                # its error reaches the subscribers
                with pytest.raises(tractor.RemoteActorError) as info:
                    async with portal.open_stream_from(
                        ticks, topics=['tock'], stop=3,
                    ) as stream:
                        async for _ in stream:
                            pass
                assert info.value.boxed_type is ValueError

                for kwargs, match in [
                    ({'topics': ['x']}, 'task_name'),
                    ({'topics': ['x'], 'task_name': 'prime'}, 'prime'),
                    ({'topics': 'x', 'task_name': 'odd'}, 'list of str'),
                ]:
                    with pytest.raises(tractor.RemoteActorError, match=match) as info:
                        async with portal.open_stream_from(numbers, **kwargs) as stream:
                            async for _ in stream:
                                pass
                    assert info.value.boxed_type is TypeError
                await portal.cancel_actor()

    trio.run(main)


def test_msgpub_decorator_checks():
    with pytest.raises(TypeError, match='async generator'):
        @msgpub
        async def not_a_gen(get_topics):
            return 1

    with pytest.raises(TypeError, match='get_topics'):
        @msgpub(tasks=['a'])
        async def no_topics():
            yield {}
