'''
Hang diagnostics: dump every thread's stack to a file if a block of
code runs longer than expected (stdlib `faulthandler`).
'''
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def dump_on_hang(
    seconds: float = 30.0,
    path: str|os.PathLike = os.path.join(tempfile.gettempdir(), 'tractor-hang.log'),
) -> Iterator[str]:
    '''
    If the block is still running after `seconds`, write the stacks of
    all threads to `path` (the process keeps running). Yields the path.
    Works even while the block is stuck in sync code.
    '''
    import faulthandler
    path = os.fspath(path)
    with open(path, 'w') as file:
        faulthandler.dump_traceback_later(seconds, repeat=False, file=file)
        try:
            yield path
        finally:
            faulthandler.cancel_dump_traceback_later()
