'''
OS process titles for actors: `ps` and `top` show `_subactor[name@pid]`
instead of the python command line. Uses `setproctitle` when installed.
'''
from __future__ import annotations

import os
from typing import (
    Any,
    TYPE_CHECKING,
)

from tractor import log

if TYPE_CHECKING:
    from tractor.runtime._runtime import Actor

logger = log.get_logger()

_def_prefix: str = '_subactor'


def set_actor_proctitle(actor: Actor, prefix: str = _def_prefix) -> str|None:
    '''
    Title this process `f'{prefix}[{actor.aid.reprol()}]'`; returns the
    title, or `None` when `setproctitle` is not installed.
    '''
    # keep `/proc/<pid>/environ` readable: without this setproctitle grows
    # the title into the environ memory, which then reads as zeros
    noenv = os.environ.get('SPT_NOENV')
    os.environ['SPT_NOENV'] = '1'
    try:
        import setproctitle
        title = f'{prefix}[{actor.aid.reprol()}]'
        setproctitle.setproctitle(title)
    except ImportError:
        logger.devx('`setproctitle` is not installed; process title unchanged')
        return None
    finally:
        if noenv is None:
            os.environ.pop('SPT_NOENV', None)
        else:
            os.environ['SPT_NOENV'] = noenv
    return title


def _title_subactor(actor: Any) -> None:
    # a subint actor shares its parent's process, and so its title
    if not actor.is_root and actor.spawn_method != 'subint':
        set_actor_proctitle(actor)
