'''
Ctrl-C (SIGINT) delivered to a root process tears down its whole
actor tree: the root exits promptly and no descendant survives.

The root runs as a separate process (a small script written to a temp
dir) so the signal does not hit pytest itself.

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
    import sys

    import trio
    import tractor


    async def sleep_forever():
        await trio.sleep_forever()


    async def spawn_nested():
        # middle of the tree: one grandchild of the root, then park
        async with tractor.open_nursery() as an:
            await an.run_in_actor(sleep_forever, name='grandchild')
            await trio.sleep_forever()


    async def main(reg_addr, tpt_proto, start_method):
        async with tractor.open_nursery(
            registry_addrs=[reg_addr],
            enable_transports=[tpt_proto],
            start_method=start_method,
        ) as an:
            await an.start_actor('daemon', enable_modules=[__name__])
            await an.run_in_actor(sleep_forever, name='sleeper')
            await an.run_in_actor(spawn_nested, name='spawner')

            # all four subactors register with us (the registrar)
            for name in ('daemon', 'sleeper', 'spawner', 'grandchild'):
                async with tractor.wait_for_actor(name):
                    pass

            print('READY', flush=True)
            await trio.sleep_forever()


    if __name__ == '__main__':
        reg_addr = ast.literal_eval(sys.argv[1])
        tpt_proto = sys.argv[2]
        start_method = sys.argv[3]
        try:
            trio.run(main, reg_addr, tpt_proto, start_method)
        except KeyboardInterrupt:
            print('GOT-KBI', flush=True)
            sys.exit(0)
''')


def wait_for_line(
    path,
    line: str,
    timeout: float,
    proc: subprocess.Popen,
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in path.read_text():
            return True
        if proc.poll() is not None:
            return line in path.read_text()
        time.sleep(0.05)
    return False


@pytest.mark.skipon_spawn_backend(
    'subint',
    reason='signals a root process and inspects its child processes',
)
def test_sigint_tears_down_tree(
    tmp_path,
    reg_addr,
    tpt_proto,
    start_method,
):
    script = tmp_path / 'sigint_root.py'
    script.write_text(ROOT_SCRIPT)
    out = tmp_path / 'stdout.txt'
    err = tmp_path / 'stderr.txt'

    env = dict(os.environ)
    env['PYTHON_COLORS'] = '0'

    with (
        out.open('w') as out_f,
        err.open('w') as err_f,
    ):
        proc = subprocess.Popen(
            [
                sys.executable,
                str(script),
                repr(tuple(reg_addr)),
                tpt_proto,
                start_method,
            ],
            cwd=str(tmp_path),
            stdout=out_f,
            stderr=err_f,
            env=env,
        )

    descendants: list[psutil.Process] = []
    try:
        ready = wait_for_line(out, 'READY', timeout=15, proc=proc)
        assert ready, (
            f'tree never became ready (rc={proc.poll()})\n'
            f'stderr:\n{err.read_text()[-3000:]}'
        )

        descendants = psutil.Process(proc.pid).children(recursive=True)
        # daemon, sleeper, spawner, grandchild
        assert len(descendants) >= 4, descendants

        sent_at = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail('root did not exit within 5s of SIGINT')

        assert time.monotonic() - sent_at < 5
        stdout = out.read_text()
        # `KeyboardInterrupt` came out of `trio.run()` as itself
        assert 'GOT-KBI' in stdout, (
            f'rc={rc}\nstdout:\n{stdout}\n'
            f'stderr:\n{err.read_text()[-3000:]}'
        )
        assert rc == 0

        # no descendant survives (nor lingers as a zombie)
        gone, alive = psutil.wait_procs(descendants, timeout=2)
        survivors = []
        for child in alive:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    survivors.append(child)
            except psutil.NoSuchProcess:
                pass
        assert not survivors, survivors
        assert not alive, alive

    finally:
        for child in descendants:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
