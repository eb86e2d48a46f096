'''
The entry point of a spawned actor: `python -m tractor._child --uid ...
--parent_addr ...`. Builds the `Actor` and runs its runtime until the
parent cancels it.
'''
from __future__ import annotations

import argparse
import ast
from typing import Any

import trio

from tractor import log
from tractor.runtime import _state
from tractor.runtime._runtime import (
    Actor,
    async_main,
)


def _actor_child_main(
    uid: tuple[str, str],
    parent_addr: Any,
    loglevel: str|None = None,
    infect_asyncio: bool = False,
    spawn_method: str = 'trio',
) -> None:
    '''Run a child actor in this process (or sub-interpreter) to completion.'''
    name, uuid = uid
    actor = Actor(name, uuid, loglevel=loglevel, spawn_method=spawn_method)
    _state._set_current_actor(actor)
    if loglevel:
        log.get_console_log(loglevel)
    if infect_asyncio:
        raise RuntimeError('`infect_asyncio=True` is not supported yet')
    try:
        trio.run(async_main, actor, None, parent_addr)
    except KeyboardInterrupt:
        pass
    finally:
        _state._set_current_actor(None)


def _parse_addr(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str]|None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m tractor._child')
    parser.add_argument('--uid', type=ast.literal_eval, required=True)
    parser.add_argument('--parent_addr', type=_parse_addr, required=True)
    parser.add_argument('--loglevel', default=None)
    parser.add_argument('--asyncio', action='store_true')
    args = parser.parse_args(argv)
    _actor_child_main(
        tuple(args.uid),
        args.parent_addr,
        loglevel=args.loglevel,
        infect_asyncio=args.asyncio,
    )


if __name__ == '__main__':
    main()
