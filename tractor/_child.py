'''
The command-line entry of a spawned actor:
`python -m tractor._child --uid ... --parent_addr ...` (the `trio`
backend's child). Not imported by the package itself, so running it with
`-m` stays clean.
'''
from __future__ import annotations

import argparse
import ast
from typing import Any

from tractor.spawn._entry import _actor_child_main


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
