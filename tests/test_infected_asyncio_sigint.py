'''
Ctrl-C in a tree of `infect_asyncio=True` actors, on every backend: the
root (plain trio, or itself an asyncio guest) exits within 5 s with
`KeyboardInterrupt` out of its run, and nothing of the tree is left:
no process, no sub-interpreter, no asyncio task still running.

The root runs as a separate process (a script in a temp dir) so the
signal does not hit pytest.

'''
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest


ROOT_SCRIPT: str = textwrap.dedent('''
    import ast
    import asyncio
    import sys

    import trio
    import tractor
    from tractor import to_asyncio


    async def aio_forever():
        await asyncio.sleep(float('inf'))


    async def park_in_asyncio():
        await to_asyncio.run_task(aio_forever)


    async def park_in_channel():
        async def aio_side(chan):
            chan.started_nowait(None)
            await chan.get()

        async with to_asyncio.open_channel_from(aio_side):
            await trio.sleep_forever()


    async def spawn_nested(start_method):
        async with tractor.open_nursery(start_method=start_method) as an:
            await an.run_in_actor(
                park_in_asyncio, name='grandchild', infect_asyncio=True,
            )
            await park_in_channel()


    async def main(reg_addr, tpt_proto, start_method):
        async with tractor.open_nursery(
            registry_addrs=[reg_addr],
            enable_transports=[tpt_proto],
            start_method=start_method,
        ) as an:
            await an.start_actor(
                'daemon', enable_modules=[__name__], infect_asyncio=True,
            )
            await an.run_in_actor(
                park_in_asyncio, name='sleeper', infect_asyncio=True,
            )
            await an.run_in_actor(
                spawn_nested, name='spawner', infect_asyncio=True,
                start_method=start_method,
            )
            for name in ('daemon', 'sleeper', 'spawner', 'grandchild'):
                async with tractor.wait_for_actor(name):
                    pass
            print('READY', flush=True)
            if tractor.current_actor().is_infected_aio():
                await park_in_channel()
            await trio.sleep_forever()


    if __name__ == '__main__':
        reg_addr = ast.literal_eval(sys.argv[1])
        tpt_proto, start_method, root_kind = sys.argv[2:5]
        try:
            if root_kind == 'infected':
                to_asyncio.run_as_asyncio_guest(
                    main, reg_addr, tpt_proto, start_method,
                )
            else:
                trio.run(main, reg_addr, tpt_proto, start_method)
        except KeyboardInterrupt:
            print('GOT-KBI', flush=True)
            sys.exit(0)
''')


def wait_for_line(path, line: str, timeout: float, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in path.read_text():
            return True
        if proc.poll() is not None:
            return line in path.read_text()
        time.sleep(0.05)
    return False


def survivors(procs: list[psutil.Process]) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=2)
    left = []
    for child in alive:
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                left.append(child)
        except psutil.NoSuchProcess:
            pass
    return left


@pytest.mark.parametrize('root_kind', ['plain', 'infected'])
@pytest.mark.parametrize('target', ['root', 'process-group'])
def test_sigint_tears_down_infected_tree(
    tmp_path,
    reg_addr,
    tpt_proto,
    start_method,
    root_kind,
    target,
):
    script = tmp_path / 'sigint_root.py'
    script.write_text(ROOT_SCRIPT)
    out = tmp_path / 'stdout.txt'
    err = tmp_path / 'stderr.txt'
    env = dict(os.environ, PYTHON_COLORS='0')

    with out.open('w') as out_f, err.open('w') as err_f:
        proc = subprocess.Popen(
            [
                sys.executable, str(script),
                repr(tuple(reg_addr)), tpt_proto, start_method, root_kind,
            ],
            cwd=str(tmp_path),
            stdout=out_f,
            stderr=err_f,
            env=env,
            # its own group: a terminal's Ctrl-C signals the whole group
            start_new_session=True,
        )

    descendants: list[psutil.Process] = []
    try:
        assert wait_for_line(out, 'READY', timeout=20, proc=proc), (
            f'tree never became ready (rc={proc.poll()})\n'
            f'stderr:\n{err.read_text()[-3000:]}'
        )
        descendants = psutil.Process(proc.pid).children(recursive=True)
        if start_method != 'subint':
            # daemon, sleeper, spawner, grandchild (+ mp helpers)
            assert len(descendants) >= 4, descendants

        sent_at = time.monotonic()
        if target == 'root':
            os.kill(proc.pid, signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f'root did not exit within 5s of SIGINT\n'
                f'stderr:\n{err.read_text()[-3000:]}'
            )
        assert time.monotonic() - sent_at < 5

        stderr = err.read_text()
        if target == 'root':
            # `KeyboardInterrupt` came out of the root's run as itself
            assert 'GOT-KBI' in out.read_text(), f'rc={rc}\nstderr:\n{stderr[-3000:]}'
            assert rc == 0
        assert 'remaining subinterpreters' not in stderr
        assert 'was abandoned' not in stderr
        assert not survivors(descendants)

    finally:
        for child in descendants:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
