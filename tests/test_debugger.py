'''
The multi-process debugger as a user meets it: every program under
`examples/debugging/` run in a pseudo-terminal (pexpect) on the session's
spawn backend (`TRACTOR_SPAWN_METHOD`), driven with `c`/`q`/Ctrl-C, with
the prompts, the REPL headers (which actor, which task), the tracebacks
and the exit status checked. Every `expect` is bounded; a script still
running at the end is SIGINTed, then its whole session SIGKILLed.

Only the TCP transport: the scripts take a registry port from
`TRACTOR_EXAMPLE_REG_PORT`, the backend is what changes the debugger's
plumbing (stdin of `mp_*` children, one process's terminal and signals
for `subint`).
'''
from __future__ import annotations

import os
import re
import signal
import sys
import time

import pytest

pexpect = pytest.importorskip('pexpect')

from tractor._testing import examples_dir
from tractor._testing.addr import get_rando_addr
from tractor.devx.debug import (
    _crash_msg,
    _ctlc_ignore_header,
    _pause_msg,
)

PROMPT = r'\(Pdb\+\)'
# a REPL shows up within this, even on a busy 2-core box
EXPECT_TIMEOUT: float = 30
_ansi = re.compile(r'\x1b\[[0-9;]*[a-zA-Z]')


class Repl:
    '''A running example script and what it printed so far.'''

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.seen: list[str] = []

    def _text(self) -> str:
        before = self.child.before or ''
        return _ansi.sub('', before)

    def prompt(self, *contains: str, timeout: float = EXPECT_TIMEOUT) -> str:
        '''Wait for the next `(Pdb+)` prompt; what came before it must hold `contains`.'''
        self.child.expect(PROMPT, timeout=timeout)
        text = self._text()
        self.seen.append(text)
        for part in contains:
            assert part in text, f'{part!r} not in output before the prompt:\n{text[-3000:]}'
        return text

    def send(self, line: str) -> None:
        self.child.sendline(line)

    def ctrl_c(self) -> None:
        self.child.sendcontrol('c')

    def exits(self, *contains: str, status: int|None = None, timeout: float = EXPECT_TIMEOUT) -> str:
        '''Wait for the end of the program; check its output tail and exit status.'''
        self.child.expect(pexpect.EOF, timeout=timeout)
        text = self._text()
        self.seen.append(text)
        for part in contains:
            assert part in text, f'{part!r} not in the final output:\n{text[-3000:]}'
        self.child.close()
        if status is not None:
            assert self.child.exitstatus == status, (
                f'exit status {self.child.exitstatus} (signal '
                f'{self.child.signalstatus}), expected {status}:\n{text[-3000:]}'
            )
        return text


@pytest.fixture
def spawn(start_method, tmp_path):
    '''Start `examples/debugging/<name>.py` in a pty on this backend.'''
    started: list[pexpect.spawn] = []

    def _spawn(name: str) -> Repl:
        port = get_rando_addr('tcp')[1]
        env = dict(os.environ)
        env.update(
            PYTHON_COLORS='0',
            NO_COLOR='1',
            TRACTOR_SPAWN_METHOD=start_method,
            TRACTOR_EXAMPLE_REG_PORT=str(port),
        )
        env.pop('TRACTOR_LOGLEVEL', None)
        script = examples_dir() / 'debugging' / f'{name}.py'
        child = pexpect.spawn(
            sys.executable, [str(script)],
            env=env,
            cwd=str(tmp_path),
            encoding='utf-8',
            codec_errors='replace',
            timeout=EXPECT_TIMEOUT,
            dimensions=(50, 200),
        )
        started.append(child)
        return Repl(child)

    yield _spawn

    for child in started:
        if not child.isalive():
            continue
        child.kill(signal.SIGINT)
        deadline = time.monotonic() + 5
        while child.isalive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if child.isalive():
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        child.close(force=True)


def header(msg: str, actor_name: str) -> tuple[str, str]:
    '''What a REPL header says: the kind of REPL and the actor's uid repr.'''
    return (msg, f"('{actor_name}', '")


# -- pause() --

def test_pause_in_root_continue(spawn):
    repl = spawn('root_actor_breakpoint')
    text = repl.prompt(*header(_pause_msg, 'root'))
    # the REPL stops at the caller's next line, not in our own frames
    assert "print('root continued past its pause')" in text
    repl.send('c')
    repl.exits('root continued past its pause', status=0)


def test_pause_in_root_quit_raises_bdbquit(spawn):
    repl = spawn('root_actor_breakpoint')
    repl.prompt(*header(_pause_msg, 'root'))
    repl.send('q')
    text = repl.exits('bdb.BdbQuit', status=1)
    assert 'root continued past its pause\r\n' not in text
    # no crash REPL for a quit
    assert _crash_msg not in text


def test_pause_in_child_loop_then_quit(spawn):
    repl = spawn('subactor_breakpoint')
    repl.prompt(*header(_pause_msg, 'pauser'), 'breakpoint_forever')
    repl.send('c')
    # `c` re-enters on the next round of the loop
    repl.prompt(*header(_pause_msg, 'pauser'), 'child round 0 done')
    repl.send('q')
    # BdbQuit travels to the root, which opens its crash REPL on it
    repl.prompt(*header(_crash_msg, 'root'), 'RemoteActorError', 'BdbQuit')
    repl.send('c')
    repl.exits('RemoteActorError', "remote task raised a 'BdbQuit'", status=1)


def test_pause_in_grandchild(spawn):
    repl = spawn('grandchild_breakpoint')
    repl.prompt(*header(_pause_msg, 'grandchild'), 'grandchild_pauses')
    repl.send('c')
    repl.exits('root got: grandchild done', status=0)


def test_two_children_pause_at_once_take_turns(spawn):
    repl = spawn('two_children_pause')
    first = repl.prompt(_pause_msg)
    repl.send('c')
    second = repl.prompt(_pause_msg)
    names = {
        name for name in ('pauser_a', 'pauser_b')
        for text in (first, second) if f"('{name}', '" in text
    }
    assert names == {'pauser_a', 'pauser_b'}
    # the second REPL opened only after the first one continued
    assert "('pauser_a', '" not in first or "('pauser_b', '" not in first
    repl.send('c')
    repl.exits('a continued b continued', status=0)


def test_pause_then_crash_in_a_context(spawn):
    repl = spawn('ctx_pause_then_error')
    repl.prompt(*header(_pause_msg, 'ctx_child'), 'pause_then_fail')
    repl.send('c')
    repl.prompt(*header(_crash_msg, 'ctx_child'), "KeyError: 'after the pause'")
    repl.send('c')
    repl.exits('root caught: KeyError', status=0)
    assert 'child said: ready' in ''.join(repl.seen)


# -- crashes --

def test_crash_in_root(spawn):
    repl = spawn('root_actor_error')
    repl.prompt(*header(_crash_msg, 'root'), 'AssertionError: the root checked and failed')
    repl.send('c')
    repl.exits('AssertionError: the root checked and failed', status=1)


def test_crash_in_child_then_root(spawn):
    repl = spawn('subactor_error')
    repl.prompt(
        *header(_crash_msg, 'name_error'),
        'Traceback',
        "NameError: name 'doggypants' is not defined",
    )
    repl.send('c')
    repl.prompt(*header(_crash_msg, 'root'), 'RemoteActorError', 'NameError')
    repl.send('c')
    repl.exits("remote task raised a 'NameError'", status=1)


def test_crash_in_run_in_actor_task(spawn):
    repl = spawn('run_in_actor_error')
    repl.prompt(*header(_crash_msg, 'checker'), 'AssertionError: the child checked and failed')
    repl.send('c')
    repl.prompt(*header(_crash_msg, 'root'), 'boxed_type: AssertionError')
    repl.send('c')
    repl.exits("remote task raised a 'AssertionError'", status=1)


def test_crash_climbs_a_nested_tree(spawn):
    repl = spawn('nested_tree_error')
    repl.prompt(*header(_crash_msg, 'leaf'), 'ValueError: leaf broke')
    repl.send('c')
    repl.prompt(*header(_crash_msg, 'middle'), 'boxed_type: ValueError')
    repl.send('c')
    repl.prompt(*header(_crash_msg, 'root'), "remote task raised a 'RemoteActorError'")
    repl.send('c')
    repl.exits('ValueError: leaf broke', status=1)


def test_quit_of_a_crash_repl_still_reports_the_error(spawn):
    repl = spawn('subactor_error')
    repl.prompt(*header(_crash_msg, 'name_error'))
    repl.send('q')
    repl.prompt(*header(_crash_msg, 'root'), 'NameError')
    repl.send('q')
    repl.exits("remote task raised a 'NameError'", status=1)


def test_per_child_debug_mode(spawn):
    repl = spawn('per_actor_debug')
    text = repl.prompt(*header(_crash_msg, 'debugged'), 'RuntimeError: debugged blew up')
    # the plain sibling crashed without a REPL, before
    assert "('plain', '" not in text.split(_crash_msg)[-1]
    repl.send('c')
    text = repl.exits('root caught: RuntimeError from debugged', status=0)
    assert 'root caught: RuntimeError from plain' in ''.join(repl.seen)
    # no REPL for the plain child, nor for the root (not in debug mode)
    assert _crash_msg not in text


# -- sync code --

def test_breakpoint_and_pause_from_sync(spawn):
    repl = spawn('sync_breakpoint')
    # builtin breakpoint() in the child's trio thread (greenback)
    repl.prompt(*header(_pause_msg, 'syncer'), '-> return value')
    repl.send('p value')
    repl.prompt('trio thread in')
    repl.send('c')
    # pause_from_sync() in a `trio.to_thread` worker thread
    repl.prompt(*header(_pause_msg, 'syncer'), 'thread_work')
    repl.send('c')
    repl.exits('root got: trio thread in', '/ from a worker thread', status=0)


# -- Ctrl-C --

@pytest.mark.parametrize('example, who', [
    ('root_actor_breakpoint', 'root'),
    ('grandchild_breakpoint', 'grandchild'),
])
def test_ctrl_c_at_a_repl_kills_nothing(spawn, example, who):
    '''
    Ctrl-C while a REPL is open (the whole foreground process group gets
    it; on `subint` only the root's main thread): the prompt comes back,
    nothing dies, and `c` still ends the program normally.
    '''
    repl = spawn(example)
    repl.prompt(*header(_pause_msg, who))
    for _ in range(3):
        repl.ctrl_c()
        repl.prompt(_ctlc_ignore_header)
    repl.send('c')
    done = 'root continued past its pause' if who == 'root' else 'root got: grandchild done'
    repl.exits(done, status=0)


# -- cancellation and teardown --

def test_shielded_pause_and_post_mortem_in_a_cancelled_scope(spawn):
    repl = spawn('shielded_pause')
    text = repl.prompt(*header(_pause_msg, 'root'))
    # the unshielded one raised `trio.Cancelled`, with a hint
    assert 'unshielded pause was cancelled' in text
    assert 'shield=True' in text
    repl.send('c')
    repl.prompt(*header(_crash_msg, 'root'), 'shielded pause continued', 'Cancelled')
    repl.send('c')
    repl.exits('scope cancelled, root done', status=0)


def test_root_timeout_waits_for_a_child_in_its_crash_repl(spawn):
    '''
    The root's `fail_after(2)` expires while the child is in its crash
    REPL: the REPL stays usable well past it, and only after `c` does the
    root tear down and report (the timeout, or the child's error with it).
    '''
    repl = spawn('root_timeout_while_child_crashed')
    repl.prompt(*header(_crash_msg, 'crasher'), "NameError: name 'doggypants'")
    time.sleep(3)
    repl.send('p 40 + 2')
    repl.prompt('42')
    repl.send('c')
    idx = repl.child.expect([PROMPT, pexpect.EOF], timeout=EXPECT_TIMEOUT)
    if idx == 0:
        # the root's own crash REPL on what it raised
        repl.send('c')
        repl.child.expect(pexpect.EOF, timeout=EXPECT_TIMEOUT)
    text = ''.join(repl.seen) + _ansi.sub('', repl.child.before or '')
    repl.child.close()
    assert repl.child.exitstatus == 1
    assert 'TooSlowError' in text or "NameError: name 'doggypants'" in text


# -- sync code, no runtime --

def test_crash_handler_in_a_cli_without_runtime(spawn):
    repl = spawn('crash_handler_cli')
    repl.prompt(_crash_msg, 'quiet handler boxed: None', 'TypeError: can only concatenate')
    repl.send('p argv')
    repl.prompt('[]')
    repl.send('c')
    repl.exits('TypeError: can only concatenate', status=1)


def test_ctrl_c_without_a_repl_ends_the_tree(spawn):
    '''Debug mode does not make a tree deaf to Ctrl-C when no REPL is open.'''
    repl = spawn('ctrl_c_tree')
    repl.child.expect('tree is up', timeout=EXPECT_TIMEOUT)
    start = time.monotonic()
    repl.ctrl_c()
    repl.exits('tree ended by Ctrl-C', status=0, timeout=15)
    assert time.monotonic() - start < 10


def test_post_mortem_by_hand_in_a_child(spawn):
    repl = spawn('pm_in_subactor')
    # the manual one, then the automatic one in the same child
    repl.prompt(*header(_crash_msg, 'inspector'), "KeyError: 'missing'")
    repl.send('c')
    repl.prompt(*header(_crash_msg, 'inspector'), "KeyError: 'missing'")
    repl.send('c')
    repl.prompt(*header(_crash_msg, 'root'), 'boxed_type: KeyError')
    repl.send('c')
    repl.exits("remote task raised a 'KeyError'", status=1)


def test_daemon_failure_while_another_is_in_its_repl(spawn):
    '''
    One daemon is paused when its sibling fails: the failing one's crash
    REPL waits for the terminal, nothing is torn down under the first
    REPL, and every REPL (feeder's pauses, the failer's crash, the root's
    crash) gets its turn, in whatever order the lock hands them out.
    '''
    repl = spawn('multi_daemon_subactors')
    repl.prompt(*header(_pause_msg, 'feeder'))
    # the sibling fails meanwhile; this REPL stays usable
    time.sleep(1.5)
    repl.send('p i')
    repl.prompt('0')
    seen: list[str] = []
    for _ in range(8):
        repl.send('c')
        idx = repl.child.expect([PROMPT, pexpect.EOF], timeout=EXPECT_TIMEOUT)
        text = _ansi.sub('', repl.child.before or '')
        repl.seen.append(text)
        if idx == 1:
            break
        for name in ('feeder', 'failer', 'root'):
            if f"('{name}', '" in text and (_pause_msg in text or _crash_msg in text):
                seen.append(name)
    else:
        pytest.fail(f'still prompting after 8 continues: {seen}')
    repl.child.close()
    assert repl.child.exitstatus == 1
    assert 'failer' in seen and 'root' in seen, seen
    assert seen[-1] == 'root'
    assert "NameError: name 'doggypants' is not defined" in ''.join(repl.seen)


def test_tpdb_drops_a_failing_test_into_crash_repls(start_method, tmp_path):
    '''
    `pytest --tpdb -s`: a test whose child crashes stops in the child's
    crash REPL, then the root's, and still fails afterwards.
    '''
    (tmp_path / 'test_crashy.py').write_text(
        'import tractor\n'
        'from tractor._testing import tractor_test\n'
        '\n'
        'async def crash():\n'
        '    raise ValueError("crashed under --tpdb")\n'
        '\n'
        '@tractor_test(timeout=120)\n'
        'async def test_crashy(reg_addr, start_method, debug_mode):\n'
        '    async with tractor.open_nursery() as an:\n'
        '        await an.run_in_actor(crash, name="crashy_child")\n'
    )
    env = dict(os.environ, PYTHON_COLORS='0', NO_COLOR='1')
    env.pop('TRACTOR_SPAWN_METHOD', None)
    child = pexpect.spawn(
        sys.executable,
        [
            '-m', 'pytest', '-q', '-s', '--tpdb',
            '-p', 'tractor._testing.pytest', '-p', 'no:cacheprovider',
            '--spawn-backend', start_method, 'test_crashy.py',
        ],
        cwd=str(tmp_path), env=env, encoding='utf-8', codec_errors='replace',
        timeout=EXPECT_TIMEOUT, dimensions=(50, 200),
    )
    repl = Repl(child)
    try:
        repl.prompt(*header(_crash_msg, 'crashy_child'), 'ValueError: crashed under --tpdb')
        repl.send('c')
        repl.prompt(*header(_crash_msg, 'root'), 'boxed_type: ValueError')
        repl.send('c')
        repl.exits('1 failed', status=1, timeout=60)
    finally:
        if child.isalive():
            # pexpect made it a session leader: its actors go with it
            os.killpg(child.pid, signal.SIGKILL)
        child.close(force=True)


def test_killing_the_actor_in_a_repl_frees_the_tree(spawn, start_method):
    '''
    The grandchild in its REPL is SIGKILLed from outside: the root frees
    its (stale) lock at once, no REPL opens for the lock dialog itself,
    and the death climbs the tree as usual, through the crash REPLs of
    the middle actor and the root.
    '''
    if start_method == 'subint':
        pytest.skip(
            'a sub-interpreter actor is no process to SIGKILL; its lock is '
            'freed on death in test_debugger_lock.py::'
            'test_lock_is_released_when_its_holder_ends[kill]'
        )
    psutil = pytest.importorskip('psutil')
    repl = spawn('grandchild_breakpoint')
    repl.prompt(*header(_pause_msg, 'grandchild'))
    victims = [
        proc for proc in psutil.Process(repl.child.pid).children(recursive=True)
        # its process title (a forkserver's command line names the script)
        if (proc.cmdline() or [''])[0].startswith('_subactor[grandchild@')
    ]
    assert len(victims) == 1, victims
    victims[0].send_signal(signal.SIGKILL)
    # the middle's task fails from the lost grandchild: its `ActorFailure`
    # or the `TransportClosed` of the result it was waiting for, whichever
    # its nursery saw first
    died = ('was killed by SIGKILL', 'TransportClosed')
    text = repl.prompt(*header(_crash_msg, 'child'))
    assert any(why in text for why in died), text[-3000:]
    assert "('root', '" not in text.split(_crash_msg)[-1].splitlines()[0]
    repl.send('c')
    text = repl.prompt(*header(_crash_msg, 'root'))
    assert any(why in text for why in died), text[-3000:]
    repl.send('c')
    repl.exits(status=1)


def test_breakpoint_in_an_asyncio_task_of_an_infected_child(spawn):
    pytest.importorskip('greenback')
    repl = spawn('asyncio_bp')
    repl.prompt(*header(_pause_msg, 'aio_child'), '-> return doubled')
    repl.send('p doubled')
    repl.prompt('42')
    repl.send('c')
    repl.exits('root got: asyncio side returned 42', status=0)


def test_breakpoint_in_asyncio_tasks_gets_a_portal_from_to_asyncio(spawn):
    '''
    `maybe_enable_greenback=True`: `breakpoint()` / `pause_from_sync()` in
    the asyncio tasks of `run_task()` and `open_channel_from()` work with
    no greenback code in the program.
    '''
    pytest.importorskip('greenback')
    source = (examples_dir() / 'debugging' / 'asyncio_bp_auto_portal.py').read_text()
    assert 'import greenback' not in source and 'ensure_portal' not in source
    repl = spawn('asyncio_bp_auto_portal')
    repl.prompt(*header(_pause_msg, 'aio_auto'), "asyncio task 'run_task_side'", '-> return tripled')
    repl.send('p tripled')
    repl.prompt('42')
    repl.send('c')
    repl.prompt(*header(_pause_msg, 'aio_auto'), "asyncio task 'channel_side'", '-> return shout')
    repl.send('p shout')
    repl.prompt("'HELLO'")
    repl.send('c')
    repl.exits('root got: asyncio sides returned 42 and HELLO', status=0)


# -- re-entry, local queueing, cancelled scopes --

def test_local_tasks_queue_and_a_reentered_pause_is_a_no_op(spawn):
    '''
    Two tasks of one child pause at once: one REPL, then the other. In
    each, stepping (`n`) over a second `pause()` opens no new session: the
    REPL just goes on to the next line.
    '''
    repl = spawn('local_tasks_pause')
    tasks = ('pauser_task_first', 'pauser_task_second')
    first = repl.prompt(*header(_pause_msg, 'two_tasks'), '-> await tractor.pause()')
    assert first.count(_pause_msg) == 1
    repl.send('n')
    stepped = repl.prompt('-> done.append(')
    assert _pause_msg not in stepped
    repl.send('c')
    second = repl.prompt(*header(_pause_msg, 'two_tasks'), '-> await tractor.pause()')
    repl.send('n')
    stepped = repl.prompt('-> done.append(')
    assert _pause_msg not in stepped
    repl.send('c')
    repl.exits(
        'root got: first went past both pauses / second went past both pauses',
        status=0,
    )
    owners = [
        next(task for task in tasks if f"<Task '{task}'" in text)
        for text in (first, second)
    ]
    assert sorted(owners) == sorted(tasks)


def test_stepping_from_a_pause_into_a_crash(spawn):
    '''
    The task in a pause REPL steps (`n`) until its error leaves the RPC
    function: the crash REPL opens in the session it already holds (it
    used to wait for the lock, i.e. for itself, forever).
    '''
    repl = spawn('ctx_pause_then_error')
    repl.prompt(*header(_pause_msg, 'ctx_child'), 'pause_then_fail')
    for _ in range(12):
        repl.send('n')
        text = repl.prompt()
        if _crash_msg in text:
            break
    else:
        pytest.fail('no crash REPL after 12 steps')
    assert "('ctx_child', '" in text.split(_crash_msg)[-1]
    assert "KeyError: 'after the pause'" in text
    repl.send('c')
    repl.exits('root caught: KeyError', status=0)


def test_unshielded_pause_in_a_cancelled_scope_of_a_child(spawn):
    '''
    In a child: `pause()` from a cancelled scope raises `trio.Cancelled`
    with a hint to use `shield=True` in the log; `pause(shield=True)` opens
    the REPL there.
    '''
    repl = spawn('shielded_pause_in_child')
    text = repl.prompt(
        *header(_pause_msg, 'canceller'),
        'child: unshielded pause was cancelled',
    )
    hint = text.split('child: unshielded pause was cancelled')[0]
    assert 'shield=True' in hint
    repl.send('c')
    repl.exits(
        'child: shielded pause continued',
        'root got: cancelled scope caught: True',
        status=0,
    )


# -- a parent's context cancel and the child's REPL --

def test_open_context_waits_for_the_childs_repl_before_cancelling_it(spawn):
    '''
    The root's `open_context()` block fails while the child sits in its
    REPL: the child's task is cancelled only after `c`, so stepping over
    `await`s meanwhile works (before, the next checkpoint raised
    `trio.Cancelled` under the user).
    '''
    repl = spawn('ctx_error_while_child_in_repl')
    text = repl.prompt(*header(_pause_msg, 'stepper'), '-> await trio.sleep(0.1)')
    if 'root block failing' not in text:
        repl.child.expect('root block failing', timeout=EXPECT_TIMEOUT)
    # time enough for a cancel request to reach the child, were one sent
    time.sleep(1)
    repl.send('n')
    text = repl.prompt("-> stepped = 'over an await'")
    assert 'Cancelled' not in text
    repl.send('n')
    repl.prompt('-> await trio.sleep(0.1)')
    repl.send('n')
    text = repl.prompt("-> print(f'child stepped {stepped}')")
    assert 'Cancelled' not in text
    repl.send('c')
    repl.exits('child stepped over an await', 'root caught: the root block failed', status=0)
