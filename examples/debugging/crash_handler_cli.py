'''
`tractor.devx.open_crash_handler()` around plain sync code (a CLI, no
runtime): a post-mortem REPL on the error, which is re-raised after it.
'''
import sys

from tractor.devx import (
    maybe_open_crash_handler,
    open_crash_handler,
)


def parse(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 'not a number'
    return count + 1


def main() -> None:
    # `pdb=False`: only boxes, no REPL
    with maybe_open_crash_handler(pdb=False) as box:
        pass
    print(f'quiet handler boxed: {box.value!r}')
    with open_crash_handler() as box:
        parse(sys.argv[1:])


if __name__ == '__main__':
    main()
