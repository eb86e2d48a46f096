'''
`tractor.devx` tools: `pformat` renderings of actors, contexts and
channels; `dump_on_hang()`; SIGUSR1 task-tree dumps in every (process)
actor of a tree, enabled by `enable_stack_on_sig=True`,
`$TRACTOR_ENABLE_STACKSCOPE` or the pytest plugin's `--enable-stackscope`;
and `_subactor[name@pid]` process titles.
'''
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
import trio

import tractor
from tractor._testing import nursery_kwargs
from tractor.devx import (
    dump_on_hang,
    pformat,
)
from tractor.devx._proctitle import _def_prefix


@tractor.context
async def describe_ctx(ctx: tractor.Context) -> None:
    await ctx.started(pformat.pformat_ctx(ctx))
    await trio.sleep_forever()


async def my_title() -> str:
    with open('/proc/self/cmdline', 'rb') as cmdline:
        return cmdline.read().split(b'\0')[0].decode()


def test_pformat_helpers_and_proctitle(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(**nursery_kwargs(reg_addr, start_method)) as an:
                portal = await an.start_actor('described', enable_modules=[__name__])

                text = pformat.pformat_actor(tractor.current_actor())
                assert text.startswith('Registrar(\n')
                assert f'aid: root[' in text and f'@{os.getpid()}' in text
                assert "children: ['described']" in text

                text = pformat.pformat_chan(portal.chan)
                assert text.startswith('Channel(\n') and 'described[' in text
                assert 'connected: True' in text

                async with portal.open_context(describe_ctx) as (ctx, child_view):
                    assert 'side: child' in child_view
                    assert f'cid: {ctx.cid}' in child_view
                    ours = pformat.pformat_ctx(ctx)
                    assert 'side: parent' in ours and 'describe_ctx' in ours
                    await ctx.cancel()

                # process actors are titled for `ps`, subints share our process
                title = await portal.run(my_title)
                pid = portal.chan.aid.pid
                if start_method == 'subint':
                    assert not title.startswith(_def_prefix)
                else:
                    assert title == f'{_def_prefix}[described@{pid}]'
                await portal.cancel_actor()

    trio.run(main)


def test_pformat_tracebacks_and_scopes():
    boxed = pformat.pformat_boxed_tb('Traceback:\n  boom\n', fields_str='src: x')
    assert boxed.splitlines()[0] == ' |_src: x'
    assert ' | Traceback:' in boxed and boxed.endswith('-')

    def caller():
        return pformat.pformat_caller_frame(stack_limit=1)

    assert 'in caller' in caller()

    async def scope_text() -> str:
        with trio.CancelScope() as cs:
            cs.cancel()
        return pformat.pformat_cs(cs)

    text = trio.run(scope_text)
    assert 'cancel_called: True' in text and 'shield: False' in text


def test_dump_on_hang(tmp_path):
    path = tmp_path / 'hang.log'
    with dump_on_hang(seconds=0.2, path=path) as got:
        assert got == str(path)
        time.sleep(0.6)  # a sync hang: no event loop could report it
    dump = path.read_text()
    assert 'most recent call first' in dump
    assert 'test_dump_on_hang' in dump

    # a block that ends in time leaves no dump
    with dump_on_hang(seconds=5, path=path):
        pass
    assert path.read_text() == ''


# the SIGUSR1 dumps, seen from outside: a script whose root signals itself
DUMP_SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import trio, tractor

    async def nap_in_child():
        await trio.sleep_forever()

    async def main(backend, tpt, reg, enable):
        async with tractor.open_nursery(
            start_method=backend,
            enable_transports=[tpt],
            registry_addrs=[reg],
            enable_stack_on_sig=enable,
        ) as an:
            await an.run_in_actor(nap_in_child, name='napper')
            await trio.sleep(0.5)
            os.kill(os.getpid(), signal.SIGUSR1)
            await trio.sleep(1.0)
            await an.cancel()

    if __name__ == '__main__':
        backend, tpt, reg, enable = sys.argv[1:]
        trio.run(main, backend, tpt, eval(reg), enable == 'flag')
''')


@pytest.mark.parametrize('how', ['flag', 'env'])
def test_sigusr1_dumps_every_actor(reg_addr, start_method, tpt_proto, how, tmp_path):
    script = tmp_path / 'dump_script.py'
    script.write_text(DUMP_SCRIPT)
    env = dict(os.environ)
    env.pop('TRACTOR_ENABLE_STACKSCOPE', None)
    if how == 'env':
        env['TRACTOR_ENABLE_STACKSCOPE'] = '1'
    proc = subprocess.run(
        [sys.executable, str(script), start_method, tpt_proto, repr(reg_addr), how],
        capture_output=True, text=True, timeout=30, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    assert 'Task tree of root[' in err, err[-3000:]
    if start_method == 'subint':
        # no signal reaches an actor living in our own process
        assert 'Task tree of napper[' not in err
    else:
        assert 'Task tree of napper[' in err, err[-3000:]
        assert 'nap_in_child' in err


def test_enable_stackscope_flag(pytester):
    pytester.makepyfile(test_flag='''
        import os, signal
        from tractor.devx import _stackscope

        def test_flag_applied():
            assert os.environ['TRACTOR_ENABLE_STACKSCOPE'] == '1'
            assert signal.getsignal(signal.SIGUSR1) is _stackscope._on_signal
    ''')
    result = pytester.runpytest_subprocess(
        '-p', 'tractor._testing.pytest', '--enable-stackscope', '-q',
    )
    result.assert_outcomes(passed=1)
