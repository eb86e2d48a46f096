'''
The command-line entry of a spawned actor:
`python -m tractor._child --uid ... --parent_addr ...` (the `trio`
backend's child). Not imported by the package itself, so running it with
`-m` stays clean.
'''
from __future__ import annotations

import argparse
import ast
import os
from typing import Any

from tractor.ipc._auth import Secret
from tractor.spawn._entry import _actor_child_main
from tractor.spawn._reason import write_reason


def _parse_addr(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _read_secret(fd: int) -> Secret:
    '''The secret our parent wrote into the pipe it passed us as `fd`.'''
    chunks = []
    with open(fd, 'rb', closefd=True) as pipe:
        while chunk := pipe.read():
            chunks.append(chunk)
    secret = b''.join(chunks)
    if not secret:
        raise SystemExit('tractor child: the parent passed no secret')
    return Secret(secret)


def main(argv: list[str]|None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m tractor._child')
    parser.add_argument('--uid', type=ast.literal_eval, required=True)
    parser.add_argument('--parent_addr', type=_parse_addr, required=True)
    parser.add_argument('--loglevel', default=None)
    parser.add_argument('--asyncio', action='store_true')
    parser.add_argument(
        '--secret-fd', type=int, default=None,
        help='read the tree secret from this inherited pipe',
    )
    parser.add_argument(
        '--reason-fd', type=int, default=None,
        help='on failure, write why into this inherited pipe',
    )
    args = parser.parse_args(argv)
    if args.reason_fd is not None:
        # ours alone, not our own children's
        os.set_inheritable(args.reason_fd, False)
    try:
        status = _actor_child_main(
            tuple(args.uid),
            args.parent_addr,
            loglevel=args.loglevel,
            infect_asyncio=args.asyncio,
            secret=_read_secret(args.secret_fd) if args.secret_fd is not None else None,
        )
    except BaseException as err:
        if args.reason_fd is not None:
            write_reason(args.reason_fd, err)
        raise
    if status:
        raise SystemExit(status)


if __name__ == '__main__':
    main()
