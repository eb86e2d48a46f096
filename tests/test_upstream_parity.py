'''
Outcomes that code written for upstream `tractor` relies on, one test (or
a few) per entry of the measured behaviour delta (the entries' numbers are
in the test docstrings): errors a context child raises while being
cancelled, `MsgStream.send()` as a scheduling point, the cause chain of a
`TransportClosed`, re-opening a stream, the parent's `__main__` in
children, enabled modules that cannot be imported, transport/registry
mismatch wording, and the appendix's smaller items.

'''
import json
import os
import subprocess
import sys
import textwrap

import pytest
import trio
import tractor
from tractor._exceptions import (
    ActorFailure,
    ContextCancelled,
    RemoteActorError,
)
from tractor._testing import nursery_kwargs


def own_uid() -> tuple[str, str]:
    return tractor.current_actor().aid.uid


# ---- entry 1: an error raised while the child is being cancelled ----

@tractor.context
async def raise_while_cancelled(ctx: tractor.Context) -> None:
    '''Shape (a): the child turns its cancellation into a real error.'''
    await ctx.started()
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        raise ValueError('raised while handling the cancellation')


@tractor.context
async def error_masked_by_cancel(ctx: tractor.Context) -> None:
    '''
    Shape (b): the child already failed; the cancel request arrives while
    its `finally:` cleans up, and an unshielded checkpoint there replaces
    the `RuntimeError` with a `trio.Cancelled`.
    '''
    await ctx.started()
    try:
        await trio.sleep(0.2)
        raise RuntimeError('app crashed')
    finally:
        with trio.CancelScope(shield=True):
            await trio.sleep(0.6)
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize(
    'endpoint, boxed',
    [
        (raise_while_cancelled, ValueError),
        (error_masked_by_cancel, RuntimeError),
    ],
    ids=['raise-in-cancel-handler', 'error-masked-by-cancelled'],
)
def test_error_while_cancelling_ctx_reaches_parent(
    reg_addr,
    start_method,
    endpoint,
    boxed,
):
    '''
    Entry 1: `ctx.cancel()` and the child ends with a real error instead
    of its cancellation. The parent gets that error (not an ack of its own
    cancel): from `wait_for_result()` and from the `open_context()` block;
    `ctx.outcome`/`maybe_error` are it and `cancel_acked` is False.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'cancel_then_fail',
                    enable_modules=[__name__],
                )
                from_result: RemoteActorError|None = None
                with pytest.raises(RemoteActorError) as excinfo:
                    async with portal.open_context(endpoint) as (ctx, _):
                        await trio.sleep(0.4)
                        await ctx.cancel()
                        try:
                            await ctx.wait_for_result()
                        except RemoteActorError as rae:
                            from_result = rae
                            raise
                assert from_result is not None
                assert from_result.boxed_type is boxed
                rae = excinfo.value
                assert rae.boxed_type is boxed
                assert rae.src_uid == portal.chan.aid.uid
                assert ctx.cancel_called
                assert not ctx.cancel_acked
                assert ctx.maybe_error is rae
                assert ctx.outcome is rae
                assert not isinstance(ctx.outcome, ContextCancelled)

                await portal.cancel_actor()

    trio.run(main)


# ---- entry 2: `MsgStream.send()` is a scheduling point ----

@tractor.context
async def stream_on_request(ctx: tractor.Context) -> None:
    '''Wait for one request, answer with that many items, then echo.'''
    await ctx.started()
    async with ctx.open_stream() as stream:
        count = await stream.receive()
        for i in range(count):
            await stream.send(i)
        async for msg in stream:
            await stream.send(msg)


@pytest.mark.parametrize('n_subs', [1, 10])
def test_subscribers_started_before_send_see_every_value(
    reg_addr,
    start_method,
    n_subs,
):
    '''
    Entry 2, the fan-out shape: consumer tasks started right before the
    parent's first `send()` subscribe before the parent's own first
    `receive()`; every consumer and the parent see every value from the
    first one on.
    '''
    count = 20

    async def consumer(stream, seen: list[int]) -> None:
        async with stream.subscribe() as sub:
            async for value in sub:
                seen.append(value)
                if len(seen) == count:
                    return

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'fanout',
                    enable_modules=[__name__],
                )
                for _ in range(3):
                    seens = [[] for _ in range(n_subs)]
                    own: list[int] = []
                    async with (
                        portal.open_context(stream_on_request) as (ctx, _),
                        ctx.open_stream() as stream,
                        trio.open_nursery() as tn,
                    ):
                        for seen in seens:
                            tn.start_soon(consumer, stream, seen)
                        await stream.send(count)
                        async for value in stream:
                            own.append(value)
                            if len(own) == count:
                                break
                    expected = list(range(count))
                    assert own == expected
                    assert seens == [expected] * n_subs
                    await ctx.cancel()
                await portal.cancel_actor()

    trio.run(main)


def test_send_lets_other_tasks_run(reg_addr, start_method):
    '''
    Entry 2, the general rule: every `await stream.send()` (and
    `Channel.send()`) lets the other ready tasks of the actor run, like
    any trio-flavoured async call; a tight send loop starves nobody.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'echoer',
                    enable_modules=[__name__],
                )
                ran: list[bool] = []

                async def mark() -> None:
                    ran[-1] = True

                async with (
                    portal.open_context(stream_on_request) as (ctx, _),
                    ctx.open_stream() as stream,
                    trio.open_nursery() as tn,
                ):
                    await stream.send(0)
                    for i in range(40):
                        ran.append(False)
                        tn.start_soon(mark)
                        await stream.send(i)
                        assert ran[-1], f'send #{i} did not yield'
                    for i in range(40):
                        assert await stream.receive() == i
                    await ctx.cancel()
                await portal.cancel_actor()

    trio.run(main)


def test_subscriber_joining_a_pending_receive(reg_addr, start_method):
    '''
    Entry 2, hardening beyond upstream: a task already blocked in a direct
    `stream.receive()` when the first subscriber joins does not compete
    with it for values; both see every value.
    '''
    count = 10

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'fanout',
                    enable_modules=[__name__],
                )
                own: list[int] = []
                seen: list[int] = []

                async def reader(stream) -> None:
                    async for value in stream:
                        own.append(value)
                        if len(own) == count:
                            return

                async def consumer(stream) -> None:
                    async with stream.subscribe() as sub:
                        async for value in sub:
                            seen.append(value)
                            if len(seen) == count:
                                return

                async with (
                    portal.open_context(stream_on_request) as (ctx, _),
                    ctx.open_stream() as stream,
                ):
                    async with trio.open_nursery() as tn:
                        tn.start_soon(reader, stream)
                        # the reader is parked in a direct receive
                        await trio.sleep(0.1)
                        tn.start_soon(consumer, stream)
                        await trio.sleep(0.1)
                        await stream.send(count)
                    await ctx.cancel()
                assert own == list(range(count))
                assert seen == list(range(count))
                await portal.cancel_actor()

    trio.run(main)


# ---- entry 3: a `TransportClosed` is caused by the transport's error ----

@tractor.context
async def stream_forever(ctx: tractor.Context) -> None:
    await ctx.started()
    async with ctx.open_stream() as stream:
        i = 0
        while True:
            await stream.send(i)
            i += 1
            await trio.sleep(0.01)


def the_transport_closed(err: BaseException, child: str) -> tractor.TransportClosed:
    '''
    The body's `TransportClosed` out of a nursery: alone, or with the
    report of the daemon `child` whose connection it was, which (not
    asked to cancel) ended because it lost its parent (issue 10: an
    error of its nursery like any child that ends unasked).
    '''
    if isinstance(err, tractor.TransportClosed):
        return err
    assert isinstance(err, ExceptionGroup), repr(err)
    tcs, rest = err.split(tractor.TransportClosed)
    assert tcs is not None and len(tcs.exceptions) == 1, repr(err)
    assert rest is not None and len(rest.exceptions) == 1, repr(err)
    lost = rest.exceptions[0]
    assert type(lost) is ActorFailure, repr(err)
    assert f"Actor ('{child}'" in str(lost), repr(err)
    assert str(lost).endswith('(it lost its connection to its parent)'), repr(err)
    return tcs.exceptions[0]


@pytest.mark.parametrize('pre_close', [False, True], ids=['open', 'pre-closed'])
def test_transport_closed_locally_cause_is_the_trio_error(
    reg_addr,
    start_method,
    pre_close,
):
    '''
    Entry 3: a local task closes the byte stream under a context's
    channel mid-stream. The user's `stream.receive()` raises a
    `TransportClosed` whose `__cause__` and `src_exc` are the trio error
    itself (one level down, not another `TransportClosed`), and the
    `open_context()` block unwinds with the same kind of error.
    '''
    async def main():
        with trio.fail_after(20):
            with pytest.raises((tractor.TransportClosed, ExceptionGroup)) as outer:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    portal = await an.start_actor(
                        'streamer',
                        enable_modules=[__name__],
                    )
                    async with (
                        portal.open_context(stream_forever) as (ctx, _),
                        ctx.open_stream() as stream,
                    ):
                        assert await stream.receive() == 0
                        byte_stream = ctx.chan.transport.stream
                        if pre_close:
                            await stream.aclose()
                        await byte_stream.aclose()
                        if pre_close:
                            # our own side is done: the context's result
                            # wait is what meets the broken channel
                            await ctx.wait_for_result()
                        else:
                            while True:
                                await stream.receive()
            tc = the_transport_closed(outer.value, 'streamer')
            assert isinstance(tc.__cause__, trio.ClosedResourceError)
            assert tc.src_exc is tc.__cause__

    trio.run(main)


# ---- entry 4 (kept different on purpose): a lost peer fails fast ----

@tractor.context
async def stream_then_drop_connection(ctx: tractor.Context) -> None:
    '''Send one item, then cut our connection to the parent abruptly.'''
    import socket
    await ctx.started()
    async with ctx.open_stream() as stream:
        await stream.send('last')
        await trio.sleep(0.1)
        sock = ctx.chan.transport.stream.socket
        sock.shutdown(socket.SHUT_RDWR)
        await trio.sleep_forever()


def test_peer_connection_lost_mid_stream_fails_fast(reg_addr, start_method):
    '''
    Entry 4 (ours differs from upstream on purpose, see the README): the
    child's connection dies without a `Stop`/`Error` while the parent is
    blocked in `receive()`. Upstream blocks until something else cancels
    it; here the `receive()` raises `TransportClosed` right away, caused
    by what broke the connection (not by another `TransportClosed`).
    '''
    async def main():
        with trio.fail_after(20):
            start = trio.current_time()
            with pytest.raises((tractor.TransportClosed, ExceptionGroup)) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    portal = await an.start_actor(
                        'dropper',
                        enable_modules=[__name__],
                    )
                    async with (
                        portal.open_context(
                            stream_then_drop_connection,
                        ) as (ctx, _),
                        ctx.open_stream() as stream,
                    ):
                        assert await stream.receive() == 'last'
                        await stream.receive()
            assert trio.current_time() - start < 10
            tc = the_transport_closed(excinfo.value, 'dropper')
            assert 'dropper' in str(tc)
            assert tc.__cause__ is not None
            assert not isinstance(tc.__cause__, tractor.TransportClosed)
            assert tc.src_exc is tc.__cause__

    trio.run(main)


# ---- entry 5: re-opening a context's stream ----

@tractor.context
async def stream_two_then_return(ctx: tractor.Context) -> str:
    await ctx.started()
    async with ctx.open_stream() as stream:
        await stream.send(1)
        await stream.send(2)
    return 'done'


def test_reopen_stream_raises_closed_resource_error(reg_addr, start_method):
    '''
    Entry 5: a stream is one-shot. Re-opening one on the same context,
    inside the `open_context()` block after the stream ended or after the
    block, raises `trio.ClosedResourceError` (also a `RuntimeError`, our
    earlier type); the child's result is not swallowed by the attempt.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'one_shot',
                    enable_modules=[__name__],
                )
                async with portal.open_context(
                    stream_two_then_return,
                ) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        assert [v async for v in stream] == [1, 2]
                    with pytest.raises(trio.ClosedResourceError) as excinfo:
                        async with ctx.open_stream():
                            pytest.fail('a second stream opened')
                    assert isinstance(excinfo.value, RuntimeError)
                    assert await ctx.wait_for_result() == 'done'

                # after the block: the dialog's feed is closed
                with pytest.raises(trio.ClosedResourceError):
                    async with ctx.open_stream():
                        pytest.fail('a stream opened after the block')

                # a context whose block never streamed, re-opened after it
                async with portal.open_context(
                    stream_two_then_return,
                ) as (ctx2, _):
                    pass
                assert ctx2.outcome == 'done'
                with pytest.raises(trio.ClosedResourceError):
                    async with ctx2.open_stream():
                        pytest.fail('a stream opened after the block')
                await portal.cancel_actor()

    trio.run(main)


# ---- entry 6: every child replays the parent's `__main__` ----

USER_SCRIPT = '''
import json
import sys

import trio
import tractor

import helper_mod

print(f'TOP LEVEL RAN AS {__name__}', flush=True)
SCRIPT_CONSTANT = 'defined by the script'


async def main(backend, proto, reg_addr):
    async with tractor.open_nursery(
        start_method=backend,
        enable_transports=[proto],
        registry_addrs=[reg_addr],
    ) as an:
        inheriting = await an.start_actor(
            'inheriting',
            enable_modules=['helper_mod'],
        )
        print('INHERITING', json.dumps(await inheriting.run(helper_mod.main_info)))
        opted_out = await an.start_actor(
            'opted_out',
            enable_modules=['helper_mod'],
            inherit_parent_main=False,
        )
        print('OPTED_OUT', json.dumps(await opted_out.run(helper_mod.main_info)))
        await an.cancel()


if __name__ == '__main__':
    print('MAIN BLOCK RAN', flush=True)
    trio.run(main, sys.argv[1], sys.argv[2], tuple(json.loads(sys.argv[3])))
'''

HELPER_MOD = '''
import sys


async def main_info() -> list:
    main = sys.modules['__main__']
    return [main.__name__, getattr(main, 'SCRIPT_CONSTANT', None)]
'''


def test_children_replay_parent_main_unless_opted_out(
    start_method,
    tpt_proto,
    tmp_path,
):
    '''
    Entry 6: a script's children replay its `__main__` (as
    `__mp_main__`, its `if __name__ == '__main__':` block off) even when
    they enable only another module, so names defined by the script
    resolve there; `inherit_parent_main=False` opts a child out.
    '''
    from tractor._testing.addr import get_rando_addr
    (tmp_path / 'user_script.py').write_text(USER_SCRIPT)
    (tmp_path / 'helper_mod.py').write_text(HELPER_MOD)
    proc = subprocess.run(
        [
            sys.executable,
            'user_script.py',
            start_method,
            tpt_proto,
            json.dumps(list(get_rando_addr(tpt_proto))),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=25,
        env=dict(os.environ, PYTHON_COLORS='0'),
    )
    report = f'rc={proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}'
    assert proc.returncode == 0, report
    out = proc.stdout
    assert out.count('MAIN BLOCK RAN') == 1, report
    assert 'TOP LEVEL RAN AS __main__' in out, report
    # the inheriting child ran the script's top level, the other one did
    # not (with mp_forkserver the server ran it once, for the children
    # it forks)
    assert out.count('TOP LEVEL RAN AS __mp_main__') == 1, report
    inheriting = json.loads(out.split('INHERITING ')[1].splitlines()[0])
    assert inheriting == ['__mp_main__', 'defined by the script'], report
    opted_out = json.loads(out.split('OPTED_OUT ')[1].splitlines()[0])
    assert opted_out[1] is None, report
    assert opted_out[0] != '__mp_main__', report


# ---- entry 7: an enabled module that cannot be imported ----

BROKEN_MODULES = {
    'parity_bad_import': ('import no_such_module_anywhere_xyz\n', ModuleNotFoundError),
    'parity_bad_syntax': ('def broken(:\n    pass\n', SyntaxError),
    'parity_raises_at_import': ("raise LookupError('top level failed')\n", LookupError),
}


@pytest.mark.parametrize('modname', list(BROKEN_MODULES))
@pytest.mark.parametrize('how', ['start_actor', 'run_in_actor'])
def test_unimportable_enabled_module_fails_the_spawn_call(
    reg_addr,
    start_method,
    tmp_path,
    monkeypatch,
    modname,
    how,
):
    '''
    Entry 7: `start_actor()`/`run_in_actor()` with an enabled module that
    exists but fails on import raise that module's own error (not a boxed
    remote one) in the caller, before anything is spawned; the nursery is
    usable afterwards.
    '''
    source, exc_type = BROKEN_MODULES[modname]
    (tmp_path / f'{modname}.py').write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                with pytest.raises(exc_type):
                    if how == 'start_actor':
                        await an.start_actor('broken', enable_modules=[modname])
                    else:
                        await an.run_in_actor(
                            trio.sleep, seconds=0,
                            name='broken', enable_modules=[modname],
                        )
                assert not an._children
                portal = await an.start_actor('fine', enable_modules=[__name__])
                assert await portal.run(answer) == 42
                await portal.cancel_actor()

    trio.run(main)


async def answer() -> int:
    return 42


# ---- entry 8: the transport/registry mismatch error names both options ----

def test_registry_transport_mismatch_names_both_options(reg_addr, start_method, tpt_proto):
    '''
    Entry 8: registry addresses of a transport that is not enabled are a
    `ValueError` naming `registry_addrs` and `enable_transports`, each
    offending address with its proto key, and the two ways out.
    '''
    other = 'uds' if tpt_proto == 'tcp' else 'tcp'

    async def main():
        with trio.fail_after(10):
            with pytest.raises(ValueError) as excinfo:
                async with tractor.open_nursery(
                    registry_addrs=[reg_addr],
                    start_method=start_method,
                    enable_transports=[other],
                ):
                    pytest.fail('the root must not open')
        msg = str(excinfo.value)
        assert 'registry_addrs' in msg
        assert 'enable_transports' in msg
        assert f"'{tpt_proto}'" in msg
        assert str(reg_addr[0]) in msg

    trio.run(main)


# ---- appendix / point 2: concurrent failures are all reported ----

async def fail_on_go(go_path: str, marker_dir: str) -> None:
    '''Raise as soon as the parent says go, noting that this error occurred.'''
    while not os.path.exists(go_path):
        await trio.sleep(0.005)
    # no checkpoint from here to the raise: this error did occur
    with open(os.path.join(marker_dir, tractor.current_actor().name), 'w'):
        pass
    raise AssertionError('failed on go')


def _leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaf_errors(sub)]
    return [exc]


@pytest.mark.parametrize('n_children', [3, 10])
@pytest.mark.parametrize(
    'body',
    ['exits', 'blocks'],
    ids=['body-exits', 'body-blocks'],
)
def test_concurrent_child_failures_all_reported(
    reg_addr,
    start_method,
    tmp_path,
    n_children,
    body,
):
    '''
    Appendix A / point 2: several `run_in_actor` children failing at about
    the same time. Every error that occurred in a child is in what the
    nursery raises (a group when several, only `RemoteActorError`s boxing
    them), whether the nursery's body had already exited or was still
    blocked (then the first failure cancels it), while the siblings are
    still cancelled promptly.
    '''
    go = tmp_path / 'go'
    markers = tmp_path / 'failed'
    markers.mkdir()

    async def main():
        with trio.fail_after(25):
            with pytest.raises(BaseException) as excinfo:
                async with tractor.open_nursery(
                    **nursery_kwargs(reg_addr, start_method),
                ) as an:
                    for i in range(n_children):
                        await an.run_in_actor(
                            fail_on_go,
                            name=f'failer{i}',
                            go_path=str(go),
                            marker_dir=str(markers),
                        )
                    go.touch()
                    went = trio.current_time()
                    if body == 'blocks':
                        await trio.sleep_forever()
            took = trio.current_time() - went
        failed = sorted(os.listdir(markers))
        assert failed
        errors = _leaf_errors(excinfo.value)
        assert all(isinstance(err, RemoteActorError) for err in errors), errors
        assert all(err.boxed_type is AssertionError for err in errors), errors
        reported = sorted(err.src_uid[0] for err in errors)
        assert reported == failed
        if len(failed) > 1:
            assert isinstance(excinfo.value, BaseExceptionGroup)
        assert took < 10, took

    trio.run(main)


# ---- appendix: UDS socket names are measured in bytes ----

async def own_sockpaths() -> list[str]:
    return [os.path.join(*addr) for addr in tractor.current_actor().accept_addrs]


def test_uds_name_of_multibyte_characters_fits(start_method):
    '''
    Appendix: an actor name of multi-byte characters short enough in
    characters but not in bytes gets a socket path that fits `sun_path`
    (a digest name), and the actor serves over it.
    '''
    from tractor._testing.addr import get_rando_addr
    from tractor.ipc._uds import UDSAddress
    name = 'w' + 'é' * 45
    addr = UDSAddress.get_random(name=name)
    assert len(os.fsencode(os.path.join(*addr.unwrap()))) < 108

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                registry_addrs=[get_rando_addr('uds')],
                enable_transports=['uds'],
                start_method=start_method,
            ) as an:
                portal = await an.start_actor(name, enable_modules=[__name__])
                paths = await portal.run(own_sockpaths)
                assert paths
                assert all(len(os.fsencode(path)) < 108 for path in paths)
                await portal.cancel_actor()

    trio.run(main)


# ---- appendix: `ctx.started(<unencodable>)` ----

@tractor.context
async def started_unencodable(ctx: tractor.Context) -> None:
    try:
        await ctx.started(object())
    except TypeError as err:
        # the encoder's plain error, not a `MsgTypeError`
        assert not isinstance(err, tractor.MsgTypeError)
        raise


def test_started_unencodable_value_is_a_type_error(reg_addr, start_method):
    '''
    Appendix: `ctx.started()` with a value the codec can not encode raises
    the encoder's plain `TypeError` in the child, which the parent gets
    boxed (`boxed_type is TypeError`), as with upstream.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'bad_started',
                    enable_modules=[__name__],
                )
                with pytest.raises(RemoteActorError) as excinfo:
                    async with portal.open_context(started_unencodable):
                        pytest.fail('`started()` must not succeed')
                rae = excinfo.value
                assert rae.boxed_type is TypeError
                assert not isinstance(rae, tractor.MsgTypeError)
                await portal.cancel_actor()

    trio.run(main)


# ---- appendix: `Context.cancel()` after the peer reported its outcome ----

@tractor.context
async def return_at_once(ctx: tractor.Context) -> str:
    await ctx.started()
    return 'finished'


@tractor.context
async def fail_at_once(ctx: tractor.Context) -> None:
    await ctx.started()
    raise NameError('failed right after started')


def test_cancel_after_outcome_sets_cancel_called(reg_addr, start_method):
    '''
    Appendix: `ctx.cancel()` after the child already returned (or failed)
    still counts as a cancel request (`cancel_called` is True), as with
    upstream; it raises nothing and the outcome stays the child's.
    '''
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
            ) as an:
                portal = await an.start_actor(
                    'finisher',
                    enable_modules=[__name__],
                )
                async with portal.open_context(return_at_once) as (ctx, _):
                    assert await ctx.wait_for_result() == 'finished'
                    await ctx.cancel()
                    assert ctx.cancel_called
                assert ctx.outcome == 'finished'
                assert not ctx.cancel_acked

                # a block that fails after the child already returned
                with pytest.raises(KeyError):
                    async with portal.open_context(return_at_once) as (ctx2, _):
                        await ctx2.wait_for_result()
                        raise KeyError('late failure in the parent')
                assert ctx2.cancel_called

                # the child's error ends the parent's block
                with pytest.raises(RemoteActorError) as excinfo:
                    async with portal.open_context(fail_at_once) as (ctx3, _):
                        await trio.sleep_forever()
                assert excinfo.value.boxed_type is NameError
                assert ctx3.cancel_called
                assert not ctx3.cancel_acked
                assert ctx3.outcome is excinfo.value
                await portal.cancel_actor()

    trio.run(main)
