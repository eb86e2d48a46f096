'''
Loading Python source files as modules, for the modules a parent enables
in its children and for the parent's `__main__` script.
'''
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def load_module_from_path(
    path: str|Path,
    module_name: str|None = None,
) -> ModuleType:
    '''Import the source file `path` as `module_name` (default: its stem).'''
    path = Path(path)
    module_name = module_name or path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f'Can not load {str(path)!r} as a Python module')
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def imported_module_file(modpath: str) -> str:
    '''
    Import `modpath` here and return its source file (`''` if it has
    none, e.g. a namespace package). Importing, not just locating, makes
    a module that cannot be imported fail where it is named, with its
    own error (`ModuleNotFoundError`, `SyntaxError`, whatever its top
    level raised), rather than later as a child's boxed remote error.
    '''
    module = importlib.import_module(modpath)
    return getattr(module, '__file__', None) or ''


def import_module(modpath: str, filepath: str) -> ModuleType:
    '''
    Import `modpath`, making its package root importable first (derived
    from `filepath`); fall back to loading the file directly when the name
    does not resolve (e.g. a test module imported by path).
    '''
    module = sys.modules.get(modpath)
    if module is not None:
        return module
    if filepath:
        path = Path(filepath)
        depth = modpath.count('.') + (path.name == '__init__.py')
        root = path.parents[depth] if depth < len(path.parents) else path.parent
        if str(root) not in sys.path:
            sys.path.append(str(root))
    try:
        return importlib.import_module(modpath)
    except ModuleNotFoundError as err:
        if not filepath or err.name not in _prefixes(modpath):
            raise
    return load_module_from_path(filepath, modpath)


def _prefixes(modpath: str) -> set[str]:
    parts = modpath.split('.')
    return {'.'.join(parts[:i]) for i in range(1, len(parts) + 1)}


def replay_parent_main(main_path: str|None, main_name: str|None) -> None:
    '''
    Import the parent's main module as `__mp_main__` (so its
    `if __name__ == '__main__':` block stays off) and alias it as
    `__main__`, the way multiprocessing's spawn start method does, with
    its rules for what not to replay: the `__main__` of a package run with
    `python -m pkg` (often not guarded by that `if`) and IPython.
    '''
    if main_name:
        if main_name == '__main__' or main_name.endswith('.__main__'):
            return
        import runpy
        module = _module_named_mp_main(
            runpy.run_module(main_name, run_name='__mp_main__', alter_sys=False)
        )
    elif os.path.splitext(os.path.basename(main_path))[0] == 'ipython':
        return
    elif main_path.endswith('.py'):
        module = load_module_from_path(main_path, '__mp_main__')
        # as multiprocessing leaves it after running a script by path:
        # a spec named `__mp_main__` would make the `mp_*` children of
        # this actor try to import a module of that name
        module.__spec__ = None
    else:
        # a script without the suffix (e.g. a console-script entry point
        # such as `bin/pytest`): the import machinery does not load it
        import runpy
        module = _module_named_mp_main(
            runpy.run_path(main_path, run_name='__mp_main__')
        )
    sys.modules['__main__'] = sys.modules['__mp_main__'] = module


def _module_named_mp_main(namespace: dict[str, Any]) -> Any:
    module = type(sys)('__mp_main__')
    module.__dict__.update(namespace)
    return module
