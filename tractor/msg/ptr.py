'''
`NamespacePath`: a `'pkg.mod:name'` reference to a Python object that can
travel as a string and be resolved on the other side.
'''
from __future__ import annotations

from functools import cached_property
from typing import Any


class NamespacePath(str):
    '''A `str` of the form `'pkg.mod:qualname'`.'''

    @cached_property
    def _ref(self) -> Any:
        from pkgutil import resolve_name
        return resolve_name(self)

    def load_ref(self) -> Any:
        return self._ref

    def to_tuple(self) -> tuple[str, str]:
        ref = self.load_ref()
        return ref.__module__, getattr(ref, '__name__', type(ref).__name__)

    @classmethod
    def from_ref(cls, ref: Any) -> NamespacePath:
        if hasattr(ref, '__self__') and hasattr(ref, '__func__'):
            owner = type(ref.__self__).__name__
            return cls(f'{ref.__module__}:{owner}.{ref.__name__}')
        if callable(ref) and hasattr(ref, '__name__'):
            return cls(f'{ref.__module__}:{ref.__name__}')
        kind = type(ref)
        return cls(f'{kind.__module__}:{kind.__name__}')
