'''
What `import tractor` and a child actor's boot load: only what an actor
needs to connect back to its parent and serve. Debugger (the REPL; the
tree debugger itself outside roots and debug-mode actors), asyncio, colour
logging, config-dir lookup, multiaddrs, optional extras and
multiprocessing (outside the `mp_*` backends) load on first use.

`python -X importtime -c 'import tractor'` shows the rest; this keeps
the list from growing back. (Import *time* is measured by
`bench/run.py`, never asserted here.)
'''
import subprocess
import sys
import textwrap

import trio
import tractor
from tractor._testing import nursery_kwargs

# never loaded by `import tractor` nor by a child actor's boot
FORBIDDEN: tuple[str, ...] = (
    'pdbp', 'pdb', 'bdb',          # the debugger, on first REPL
    'tractor.devx.debug',          # roots and debug-mode actors only
    'asyncio',                     # `infect_asyncio` / `tractor.to_asyncio`
    'colorlog',                    # once a console handler prints a record
    'pygments',
    'platformdirs',                # the root's secret file / UDS dir lookup
    'psutil',
    'multiaddr',                   # `mk_maddr()` / `parse_maddr()`
    'numpy',                       # `ipc._shm` arrays
    'stackscope', 'greenback',     # devx extras
    'tricycle',                    # `trionics.supervise_run_process`
    'runpy', 'pkgutil',            # `__main__` replay, `NamespacePath.load_ref`
    'faulthandler',                # `devx.dump_on_hang`
    'multiprocessing',             # the `mp_*` backends
)
# loaded by `import tractor` itself, but fine in some children: the
# `mp_*` backends run on multiprocessing, and process actors title
# themselves with setproctitle
ROOT_ONLY: tuple[str, ...] = ('setproctitle',)


def test_import_tractor_loads_none_of_the_optional_modules():
    code = textwrap.dedent(f'''
        import sys
        import tractor
        import tractor._child, tractor.spawn._entry
        print(sorted(m for m in {FORBIDDEN + ROOT_ONLY!r} if m in sys.modules))
    ''')
    proc = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '[]', f'loaded by `import tractor`: {proc.stdout}'


PROBE = '''
import sys


async def loaded(names):
    return sorted(name for name in names if name in sys.modules)
'''


def test_child_boot_loads_none_of_the_optional_modules(
    reg_addr, start_method, tmp_path, monkeypatch,
):
    # the probe lives in a module of its own: the test module would
    # bring pytest (and its imports) into the child
    (tmp_path / 'lazy_import_probe.py').write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    allowed = set()
    if start_method.startswith('mp_'):
        # and its `__main__` replay (`runpy`, `pkgutil`)
        allowed |= {'multiprocessing', 'runpy', 'pkgutil'}
    if start_method == 'mp_forkserver':
        # the server preloads the parent's `__main__` (here the test
        # runner) before forking, so a child holds what that imported
        allowed |= {name for name in FORBIDDEN if name in sys.modules}
    if start_method == 'trio':
        # `python -m tractor._child`: the interpreter runs `-m` with it
        allowed.add('runpy')
    if 'colorlog' in sys.modules:
        # this process printed log records (e.g. `--ll info`): its
        # children log like it, and may print some too
        allowed.add('colorlog')

    async def main() -> list[str]:
        with trio.fail_after(60):
            async with tractor.open_nursery(**nursery_kwargs(reg_addr, start_method)) as an:
                portal = await an.start_actor(
                    'probe',
                    enable_modules=['lazy_import_probe'],
                    # the test runner's `__main__` (pytest) is not the runtime's
                    inherit_parent_main=False,
                )
                found = await portal.run_from_ns(
                    'lazy_import_probe', 'loaded', names=list(FORBIDDEN),
                )
                await portal.cancel_actor()
                return found

    found = trio.run(main)
    assert set(found) <= allowed, f'a {start_method} child loaded {found}'
