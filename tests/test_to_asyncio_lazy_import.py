'''
`import tractor` does not import asyncio; `tractor.to_asyncio` is loaded
on first use (PEP 562 module `__getattr__`) and is still listed by
`dir(tractor)` and `tractor.__all__` (so `from tractor import *` binds it).
Each check runs in a fresh interpreter.

'''
import subprocess
import sys
import textwrap


def run_fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-c', textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_import_tractor_does_not_import_asyncio():
    proc = run_fresh('''
        import sys
        import tractor
        assert 'asyncio' not in sys.modules, 'asyncio was imported'
        assert 'tractor.to_asyncio' not in sys.modules
        # spawning machinery is loaded too, still without asyncio
        import tractor.spawn._entry, tractor._child
        assert 'asyncio' not in sys.modules
        print('clean')
    ''')
    assert proc.returncode == 0, proc.stderr
    assert 'clean' in proc.stdout


def test_to_asyncio_loads_on_first_use():
    proc = run_fresh('''
        import sys
        import tractor
        assert 'to_asyncio' in dir(tractor)
        assert 'to_asyncio' in tractor.__all__
        mod = tractor.to_asyncio
        assert mod is sys.modules['tractor.to_asyncio']
        assert 'asyncio' in sys.modules
        assert mod.run_task and mod.open_channel_from and mod.LinkedTaskChannel
        try:
            tractor.no_such_name
        except AttributeError as err:
            assert 'no_such_name' in str(err)
        else:
            raise SystemExit('a missing attribute did not raise')
        print('loaded')
    ''')
    assert proc.returncode == 0, proc.stderr
    assert 'loaded' in proc.stdout


def test_star_import_binds_to_asyncio():
    proc = run_fresh('''
        from tractor import *
        print(to_asyncio.__name__)
    ''')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == 'tractor.to_asyncio'
