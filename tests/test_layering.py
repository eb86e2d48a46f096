'''
The package's import graph: no cycles, and no module importing from a
layer above its own (`msg -> ipc -> runtime -> discovery -> spawn ->
entry points`). Imports under `if TYPE_CHECKING:` are annotations only and
do not count; imports inside functions do.
'''
from __future__ import annotations

import ast
from pathlib import Path

import tractor

PKG_DIR = Path(tractor.__file__).parent

# (module-name prefix, layer); the longest matching prefix wins
LAYERS: list[tuple[str, int]] = [
    ('tractor.log', 0),
    ('tractor.msg', 0),
    ('tractor._exceptions', 0),
    ('tractor.trionics', 0),
    ('tractor.ipc', 1),
    # a helper room above the core (ties segments to the current actor)
    ('tractor.ipc._shm', 5),
    ('tractor._code_load', 2),
    ('tractor.runtime', 2),
    ('tractor._context', 2),
    ('tractor._streaming', 2),
    ('tractor.discovery', 3),
    ('tractor.spawn', 4),
    ('tractor._root', 5),
    ('tractor._child', 4),  # the child side of spawning
    ('tractor.devx', 5),
    ('tractor._testing', 6),
    ('tractor', 5),
]


def layer_of(modname: str) -> int:
    best = max(
        (prefix for prefix, _ in LAYERS
         if modname == prefix or modname.startswith(prefix + '.')),
        key=len,
    )
    return dict(LAYERS)[best]


def module_names() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in PKG_DIR.rglob('*.py'):
        parts = ['tractor', *path.relative_to(PKG_DIR).with_suffix('').parts]
        if parts[-1] == '__init__':
            parts.pop()
        mods['.'.join(parts)] = path
    return mods


def import_graph() -> dict[str, set[str]]:
    mods = module_names()
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, 'id', '') == 'TYPE_CHECKING':
                node.body = []
        pkg = name if path.name == '__init__.py' else name.rpartition('.')[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split('.')[: len(pkg.split('.')) - node.level + 1]
                    mod = '.'.join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ''
                subs = [f'{mod}.{alias.name}' for alias in node.names]
                found = [sub for sub in subs if sub in graph]
                targets = found + ([mod] if len(found) < len(subs) else [])
            graph[name].update(t for t in targets if t in graph and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]|None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]|None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None


def test_no_upward_imports():
    graph = import_graph()
    upward = [
        f'{src} (layer {layer_of(src)}) imports {dst} (layer {layer_of(dst)})'
        for src, dsts in graph.items()
        for dst in dsts
        # a package's __init__ may re-export what sits below or beside it
        if layer_of(dst) > layer_of(src) and not (
            src == 'tractor' or dst.startswith(src + '.')
        )
    ]
    assert not upward, '\n'.join(upward)
