'''
An actor's accept loop under `accept()` failures, typically fd
exhaustion (EMFILE): it must back off instead of spinning, keep its log
output bounded, keep serving, and accept again once fds are freed.

'''
import errno
import os
import signal
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
import trio.testing

import tractor
from tractor._testing.addr import get_rando_addr
from tractor.ipc import _server
from tractor.ipc._server import (
    ACCEPT_BACKOFF_MAX,
    ACCEPT_BACKOFF_MIN,
    ACCEPT_LOG_INTERVAL,
    _AcceptFailures,
)


def emfile() -> OSError:
    return OSError(errno.EMFILE, os.strerror(errno.EMFILE))


# ---- the backoff/log policy on its own (no I/O, simulated time) ----

def test_backoff_doubles_caps_and_resets():
    '''
    Delays double from the minimum to the cap; a success resets them.
    Pure logic: independent of `start_method` and `tpt_proto`.
    '''
    fails = _AcceptFailures('test')
    now = 0.0
    delays = []
    for _ in range(12):
        delay, _msg = fails.failed(emfile(), now)
        delays.append(delay)
        now += delay
    assert delays[0] == ACCEPT_BACKOFF_MIN
    assert all(b == min(2 * a, ACCEPT_BACKOFF_MAX) for a, b in zip(delays, delays[1:]))
    assert delays[-1] == ACCEPT_BACKOFF_MAX

    assert 'recovered after 12 failures' in fails.succeeded(now)
    assert fails.succeeded(now) is None  # nothing to recover from
    delay, _msg = fails.failed(emfile(), now)
    assert delay == ACCEPT_BACKOFF_MIN


def test_log_lines_bounded_when_failing_for_long():
    '''
    A minute of continuous failures: the first one is logged at once,
    then one summary per interval carrying the suppressed count, then
    one recovery line. Independent of `start_method` and `tpt_proto`.
    '''
    fails = _AcceptFailures('test')
    now = 0.0
    lines = []
    total = 0
    while now < 60:
        delay, msg = fails.failed(emfile(), now)
        total += 1
        if msg:
            lines.append(msg)
        now += delay
    assert 'failed (out of file descriptors' in lines[0]
    assert len(lines) <= 60 / ACCEPT_LOG_INTERVAL + 1
    assert all('still failing' in line for line in lines[1:])
    # every failure is accounted for in some line
    counted = 1 + sum(
        int(line.split(' failures since')[0].rsplit(' ', 1)[-1])
        for line in lines[1:]
    )
    assert counted + fails.unreported == total

    recovered = fails.succeeded(now)
    assert 'recovered' in recovered


def test_log_lines_bounded_when_flapping():
    '''
    Accepts alternating between failing and succeeding many times a
    second (fds freed and taken again) still log at most two lines per
    interval. Independent of `start_method` and `tpt_proto`.
    '''
    fails = _AcceptFailures('test')
    now = 0.0
    lines = []
    for _ in range(10_000):
        delay, msg = fails.failed(emfile(), now)
        lines.append(msg)
        now += delay
        lines.append(fails.succeeded(now))
        now += 0.001
    lines = [line for line in lines if line]
    intervals = now / ACCEPT_LOG_INTERVAL + 1
    assert 2 <= len(lines) <= 2 * intervals
    assert any('earlier failures not logged' in line for line in lines[2:])


def test_other_oserrors_are_labelled():
    '''Non-exhaustion errors back off too, labelled as unexpected.'''
    fails = _AcceptFailures('test')
    delay, msg = fails.failed(OSError(errno.EINVAL, 'bad'), 0.0)
    assert delay == ACCEPT_BACKOFF_MIN
    assert 'unexpected error' in msg


# ---- the accept loop with a scripted listener (virtual clock) ----

class ScriptedListener:
    '''
    Stands in for `trio.SocketListener`: `accept()` fails with EMFILE
    until virtual time `fail_until`, then yields `succeed` streams,
    then reports being closed.
    '''
    def __init__(self, fail_until: float, succeed: int) -> None:
        self.fail_until = fail_until
        self.succeed = succeed
        self.calls = 0
        self.socket = SimpleNamespace(getsockname=lambda: '/fake.sock')

    async def accept(self):
        await trio.lowlevel.checkpoint()
        self.calls += 1
        # a busy loop would never advance the virtual clock: stop it
        assert self.calls < 1000, 'accept loop is spinning'
        if trio.current_time() < self.fail_until:
            raise emfile()
        if self.succeed:
            self.succeed -= 1
            return object()
        raise trio.ClosedResourceError


def test_accept_loop_backs_off_and_recovers(monkeypatch):
    '''
    `IPCServer._accept_loop()` sleeps between failing accepts (bounded
    call count over 30 virtual seconds), logs a handful of lines, and
    hands streams to `_handle_stream()` once accepts succeed again.
    Independent of `start_method` and `tpt_proto`.
    '''
    logged: list[str] = []
    monkeypatch.setattr(
        _server,
        'logger',
        SimpleNamespace(warning=logged.append),
    )
    listener = ScriptedListener(fail_until=30.0, succeed=3)
    handled: list = []

    async def handle_stream(stream):
        handled.append(stream)

    async def main():
        with trio.fail_after(120):
            stub = SimpleNamespace(_handle_stream=handle_stream)
            async with trio.open_nursery() as tn:
                await _server.IPCServer._accept_loop(stub, listener, tn)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    assert len(handled) == 3
    # ~7 calls to reach the 1 s cap, then about one per second
    assert listener.calls < 30 / ACCEPT_BACKOFF_MAX + 15
    assert 2 <= len(logged) <= 30 / ACCEPT_LOG_INTERVAL + 2, logged
    assert "'/fake.sock'" in logged[0]
    assert 'recovered' in logged[-1]


# ---- a real actor running out of fds (subprocess) ----

# fds the server may open beyond those open when it is up
HEADROOM: int = 8

FD_SERVER_SCRIPT: str = textwrap.dedent('''
    import ast
    import os
    import resource
    import sys

    import trio
    import tractor

    async def main(addr, tpt_proto: str, headroom: int) -> None:
        async with tractor.open_root_actor(
            name='fdserver',
            registry_addrs=[addr],
            enable_transports=[tpt_proto],
            loglevel='warning',
        ):
            # leave room for only `headroom` more fds
            top = max(int(fd) for fd in os.listdir('/dev/fd'))
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1 + headroom, hard))
            print('READY', flush=True)
            await trio.sleep_forever()

    try:
        trio.run(main, ast.literal_eval(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
    except KeyboardInterrupt:
        pass  # how the test stops us
''')


async def open_raw(tpt_proto: str, addr) -> trio.SocketStream:
    if tpt_proto == 'tcp':
        host, port = addr
        return await trio.open_tcp_stream(host, port)
    sockdir, filename = addr
    return await trio.open_unix_socket(os.path.join(sockdir, filename))


async def wait_for_text(path: Path, text: str, proc: trio.Process) -> None:
    '''Poll `path` until it contains `text`; fail if `proc` exits first.'''
    while text not in path.read_text():
        assert proc.returncode is None, (
            f'server exited (rc={proc.returncode}) before {text!r}:\n'
            f'{path.read_text()[-3000:]}'
        )
        await trio.sleep(0.05)


def accept_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if 'accept() on' in line]


@pytest.mark.skipif(
    not os.path.isdir('/dev/fd'),
    reason='needs /dev/fd to count open fds',
)
def test_actor_survives_fd_exhaustion(tmp_path, tpt_proto):
    '''
    A root actor in a subprocess (so its lowered RLIMIT_NOFILE does not
    touch pytest) gets more connections than it has fds for: it logs a
    bounded number of accept warnings while exhausted, and once the
    connections are gone it accepts again. A peer connected beforehand
    is served throughout; afterwards a new one gets a real tractor
    registry lookup and RPC served. The server is not spawned
    through `start_method`: independent of the spawn backend.
    '''
    addr = get_rando_addr(tpt_proto)
    out = tmp_path / 'out.txt'
    err = tmp_path / 'err.txt'
    env = {
        key: val for key, val in os.environ.items()
        if key not in ('TRACTOR_LOGLEVEL', 'TRACTOR_SPAWN_METHOD')
    }
    env['PYTHON_COLORS'] = '0'

    async def registered(portal) -> bool:
        registry = await portal.run_from_ns('self', 'get_registry')
        return any(key.startswith('fdserver.') for key in registry)

    async def exhaust_and_recover(portal, extra, proc) -> None:
        # twice the headroom: the rest queues in the listen backlog
        for _ in range(2 * HEADROOM + 8):
            extra.append(await open_raw(tpt_proto, addr))
        await wait_for_text(err, 'accept() on', proc)

        # out of fds, the existing connection is still served
        assert await registered(portal)

        # stay exhausted a while: the server keeps retrying
        await trio.sleep(2)
        exhausted = accept_lines(err.read_text())
        assert 1 <= len(exhausted) < 10, exhausted
        assert 'out of file descriptors' in exhausted[0]
        assert await registered(portal)

        for stream in extra:
            await stream.aclose()
        extra.clear()
        await wait_for_text(err, 'recovered', proc)

    async def run_test():
        with out.open('w') as out_f, err.open('w') as err_f:
            proc = await trio.lowlevel.open_process(
                [
                    sys.executable, '-c', FD_SERVER_SCRIPT,
                    repr(tuple(addr)), tpt_proto, str(HEADROOM),
                ],
                stdout=out_f,
                stderr=err_f,
                env=env,
            )
        extra: list[trio.SocketStream] = []
        try:
            with trio.fail_after(30):
                await wait_for_text(out, 'READY', proc)

            async with tractor.open_root_actor(
                name='checker',
                registry_addrs=[addr],
                enable_transports=[tpt_proto],
            ):
                with trio.fail_after(30):
                    # a peer connected before the exhaustion
                    async with tractor.find_actor(
                        'fdserver',
                        registry_addrs=[addr],
                    ) as portal:
                        assert portal is not None
                        await exhaust_and_recover(portal, extra, proc)

                    # and a new connection + RPCs after the recovery
                    async with tractor.find_actor(
                        'fdserver',
                        registry_addrs=[addr],
                    ) as portal:
                        assert portal is not None
                        assert portal.chan.aid.name == 'fdserver'
                        assert await registered(portal)

            # (a remotely cancelled root keeps running its body, so stop
            # the server the way a user would)
            with trio.fail_after(30):
                proc.send_signal(signal.SIGINT)
                await proc.wait()

            log = err.read_text()
            lines = accept_lines(log)
            assert len(lines) < 10, lines
            assert 'recovered' in lines[-1], lines
        finally:
            with trio.CancelScope(shield=True):
                for stream in extra:
                    await stream.aclose()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    async def main():
        # overall bound, also covering the checker root's setup/teardown
        with trio.fail_after(90):
            await run_test()

    trio.run(main)
