'''
Multi-actor debugging support.

'''
from __future__ import annotations

from typing import Sequence


class BoxedMaybeException:
    '''
    A mutable holder for an exception that a `with`-block may or may
    not have raised; yielded by crash handlers and
    `tractor._testing.expect_ctxc()`.

    `.value`: the captured exception, `None` until one was.
    `.raise_on_exit`: whether (`True`) or for which exception types
    (a sequence) the capturing block should re-raise on exit.

    '''
    __slots__ = ('value', 'raise_on_exit')

    def __init__(
        self,
        value: BaseException | None = None,
        raise_on_exit: bool | Sequence[type[BaseException]] = False,
    ) -> None:
        self.value = value
        self.raise_on_exit = raise_on_exit

    def pformat(self) -> str:
        if self.value is None:
            return f'<{type(self).__name__} (no exception)>'
        return f'<{type(self).__name__} {self.value!r}>'

    __repr__ = pformat
