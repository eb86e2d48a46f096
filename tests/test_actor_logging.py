'''
Every actor logs to the console the way the root does: the same record
format (time, level, actor and task), the levels and log-specs it
inherits from its parent or gets per child (`start_actor(loglevel=)`),
quiet expected cancellation at the default level, and a `--ll` test run
shows what children log.

'''
import json
import os
import re
import subprocess
import sys

import pytest


SCRIPT = '''
import json
import sys

import trio
import tractor

log = tractor.log.get_logger(name='parity_logs')


async def say(word: str, spawn: bool = False) -> None:
    log.info(f'INFO-{word}')
    log.cancel(f'CANCEL-{word}')
    log.warning(f'WARNING-{word}')
    if spawn:
        async with tractor.open_nursery() as an:
            portal = await an.start_actor('grandchild', enable_modules=[__name__])
            await portal.run(say, word='grandchild')
            await portal.cancel_actor()


async def main(backend, proto, reg_addr, root_level):
    async with tractor.open_nursery(
        start_method=backend,
        enable_transports=[proto],
        registry_addrs=[reg_addr],
        loglevel=root_level,
    ) as an:
        log.info('INFO-root')
        inheriting = await an.start_actor('inheriting', enable_modules=[__name__])
        await inheriting.run(say, word='inheriting', spawn=True)
        chatty = await an.start_actor(
            'chatty', enable_modules=[__name__], loglevel='info',
        )
        await chatty.run(say, word='chatty')
        specced = await an.start_actor(
            'specced', enable_modules=[__name__], loglevel='parity_logs:cancel',
        )
        await specced.run(say, word='specced')
        await an.cancel()


if __name__ == '__main__':
    backend, proto, reg_addr, root_level = sys.argv[1:]
    trio.run(main, backend, proto, tuple(json.loads(reg_addr)), root_level)
'''

# time, level, [actor|task], where, message
RECORD = re.compile(
    r'^\w{3} \d\d \d\d:\d\d:\d\d (?P<level>[A-Z]+) '
    r'\[(?P<actor>[^|\]]+)\|[^\]]*\] \S+:\d+ (?P<msg>\S+)$'
)


def run_script(tmp_path, start_method, tpt_proto, root_level) -> str:
    from tractor._testing.addr import get_rando_addr
    script = tmp_path / 'logging_tree.py'
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [
            sys.executable, str(script), start_method, tpt_proto,
            json.dumps(list(get_rando_addr(tpt_proto))), root_level,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=25,
        env=dict(os.environ, PYTHON_COLORS='0'),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def records(stderr: str) -> dict[str, tuple[str, str]]:
    '''Our markers logged as `{message: (level, actor)}`; raises on bare ones.'''
    found: dict[str, tuple[str, str]] = {}
    for line in stderr.splitlines():
        if '-' not in line or not any(
            tag in line for tag in ('INFO-', 'CANCEL-', 'WARNING-')
        ):
            continue
        match = RECORD.match(line.strip())
        assert match, f'a record without time, level or actor: {line!r}'
        found[match['msg']] = (match['level'], match['actor'])
    return found


def test_children_log_like_the_root(start_method, tpt_proto, tmp_path):
    '''
    Root at `info`: its children and grandchildren inherit it; a child
    started with `loglevel='info'` or a log-spec gets that instead; every
    record is formatted with time, level and the emitting actor's name.
    '''
    got = records(run_script(tmp_path, start_method, tpt_proto, 'info'))
    assert got['INFO-root'] == ('INFO', 'root')
    for actor in ('inheriting', 'grandchild', 'chatty'):
        assert got[f'INFO-{actor}'] == ('INFO', actor), got
        assert got[f'CANCEL-{actor}'] == ('CANCEL', actor), got
        assert got[f'WARNING-{actor}'] == ('WARNING', actor), got
    # the spec only sets the child's `parity_logs` logger: cancel and up
    assert 'INFO-specced' not in got
    assert got['CANCEL-specced'] == ('CANCEL', 'specced')


def test_per_child_level_below_a_quiet_root(start_method, tpt_proto, tmp_path):
    '''
    Root at the default `error`: nothing of ours is printed by the root
    or by children inheriting it, while a child given `loglevel='info'`
    (or a log-spec) logs at that level; expected cancellation of the
    whole tree prints nothing else.
    '''
    stderr = run_script(tmp_path, start_method, tpt_proto, 'error')
    got = records(stderr)
    assert set(got) == {
        'INFO-chatty', 'CANCEL-chatty', 'WARNING-chatty', 'CANCEL-specced',
        'WARNING-specced',
    }, stderr
    others = [
        line for line in stderr.splitlines()
        if line.strip() and not any(marker in line for marker in got)
    ]
    assert not others, stderr


def test_ll_run_shows_children_logs(pytester, start_method, tpt_proto):
    '''
    A test run with `--ll info` shows (on `-s`, or in a failure's
    captured output) the records its children log, formatted.
    '''
    pytester.makepyfile(test_child_logs='''
        import trio
        import tractor

        log = tractor.log.get_logger(name='parity_ll')

        async def chat() -> None:
            log.info('CHILD-SAYS-HELLO')

        def test_chat(reg_addr, start_method):
            async def main():
                with trio.fail_after(20):
                    async with tractor.open_nursery(
                        registry_addrs=[reg_addr], start_method=start_method,
                    ) as an:
                        portal = await an.start_actor(
                            'll_child', enable_modules=[__name__],
                        )
                        await portal.run(chat)
                        await portal.cancel_actor()
            trio.run(main)
    ''')
    result = pytester.runpytest_subprocess(
        '-p', 'tractor._testing.pytest', '-s', '-q',
        '--spawn-backend', start_method, '--tpt-proto', tpt_proto,
        '--ll', 'info',
    )
    result.assert_outcomes(passed=1)
    out = result.stdout.str() + result.stderr.str()
    lines = [line for line in out.splitlines() if 'CHILD-SAYS-HELLO' in line]
    assert lines, out
    assert ' INFO [ll_child|' in lines[0], lines
