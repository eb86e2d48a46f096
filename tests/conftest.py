'''
Test-suite configuration.

The `tractor._testing.pytest` plugin (options, fixtures, markers) is
loaded via `-p` in `pyproject.toml`'s pytest `addopts`; only extra
plugins go here.

'''
import compileall
import pathlib
import sys

import tractor

pytest_plugins = ['pytester']


def pytest_configure(config) -> None:
    # With `PYTHONDONTWRITEBYTECODE` set (as on this project's CI boxes)
    # no interpreter ever caches tractor's bytecode, so every actor the
    # suite spawns would compile the whole package at boot (~50 ms each).
    # Compile it once for all of them.
    if sys.dont_write_bytecode:
        compileall.compile_dir(
            str(pathlib.Path(tractor.__file__).parent), quiet=1,
        )
