'''
Multi-actor debugging support.

'''
from __future__ import annotations

# defined down in trionics, whose helpers yield it too
from tractor.trionics._taskc import (
    BoxedMaybeException as BoxedMaybeException,
)
