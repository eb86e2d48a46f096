'''
Helpers for testing `tractor` (and projects built on it).

The pytest plugin lives in `tractor._testing.pytest` (load it with
`-p tractor._testing.pytest`); this package holds the plain helpers.

'''
from __future__ import annotations

from contextlib import asynccontextmanager as acm
import functools
import inspect
import os
import pathlib
import platform
import sys
from typing import (
    Any,
    AsyncIterator,
    Callable,
)

from .fault_simulation import break_ipc

__all__ = [
    'break_ipc',
    'examples_dir',
    'expect_ctxc',
    'mk_cmd',
    'repodir',
    'tractor_test',
]


def nursery_kwargs(reg_addr, start_method: str) -> dict:
    '''
    The `open_nursery()`/`open_root_actor()` kwargs every spawning test
    passes: the session's unique registry address and spawn backend.
    '''
    return dict(registry_addrs=[reg_addr], start_method=start_method)


def repodir() -> pathlib.Path:
    '''
    Root of the source checkout this package was imported from.

    '''
    # <repo>/tractor/_testing/__init__.py
    return pathlib.Path(__file__).resolve().parent.parent.parent


def examples_dir() -> pathlib.Path:
    '''
    The repo's `examples/` directory.

    '''
    return repodir() / 'examples'


def mk_cmd(
    ex_name: str,
    exs_subpath: str = 'debugging',
) -> str:
    '''
    Shell command running the example script `ex_name` (no `.py`)
    found under `examples/<exs_subpath>/`, with the interpreter
    running this code.

    Also sets `PYTHON_COLORS=0` in this process' env (inherited by
    spawned commands) so tracebacks stay free of colour codes.

    '''
    os.environ['PYTHON_COLORS'] = '0'
    script: pathlib.Path = examples_dir() / exs_subpath / f'{ex_name}.py'
    return ' '.join([sys.executable, str(script)])


@acm
async def expect_ctxc(
    yay: bool,
    reraise: bool = False,
) -> AsyncIterator[Any]:
    '''
    Expect (when `yay`) the body to raise `ContextCancelled`.

    Yields a `tractor.devx.debug.BoxedMaybeException` whose `.value`
    is set to the caught ctxc; the ctxc is swallowed unless `reraise`.
    A body finishing without one raises `RuntimeError`. With `yay`
    false the block is transparent.

    '''
    from tractor.devx.debug import BoxedMaybeException

    box = BoxedMaybeException(raise_on_exit=reraise)
    if not yay:
        yield box
        return

    from tractor._exceptions import ContextCancelled
    try:
        yield box
    except ContextCancelled as ctxc:
        box.value = ctxc
        if reraise:
            raise
        return

    raise RuntimeError('Never raised ctxc?')


# fixtures `tractor_test` passes on to `open_root_actor()`.
_root_fixtures: tuple[str, ...] = (
    'reg_addr',
    'loglevel',
    'start_method',
    'debug_mode',
)

# fixtures requested for a test even when it does not declare them;
# `reg_addr` so that no test ever boots a root registering with the
# default (real) registry address.
_injected_fixtures: tuple[str, ...] = (
    'reg_addr',
)


def tractor_test(
    wrapped: Callable[..., Any] | None = None,
    *,
    timeout: float = 30,
    hide_tb: bool = True,
) -> Callable[..., Any]:
    '''
    Run an `async def` test inside a root actor:

        @tractor_test
        async def test_foo(reg_addr, start_method): ...

        @tractor_test(timeout=10)
        async def test_bar(): ...

    The returned wrapper is a plain (sync) function with the test's
    own signature (so pytest injects the declared fixtures) plus
    `reg_addr`, which is always requested but only passed on to the
    test when declared. The root is opened with the `reg_addr`,
    `loglevel`, `start_method` and `debug_mode` fixture values when
    available, and the whole run is bounded by `trio.fail_after(timeout)`.

    '''
    if wrapped is None:
        return functools.partial(
            tractor_test,
            timeout=timeout,
            hide_tb=hide_tb,
        )

    if not inspect.iscoroutinefunction(wrapped):
        raise TypeError(
            f'Test-function {getattr(wrapped, "__name__", wrapped)!r} '
            'must be an `async def` function to use `@tractor_test`.'
        )

    sig: inspect.Signature = inspect.signature(wrapped)
    declared: set[str] = set(sig.parameters)
    has_var_kw: bool = any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        for p in sig.parameters.values()
    )
    extra: list[str] = [
        name for name in _injected_fixtures
        if name not in declared
    ]
    params: list[inspect.Parameter] = [
        p for p in sig.parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    params.extend(
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY)
        for name in extra
    )
    params.extend(
        p for p in sig.parameters.values()
        if p.kind is inspect.Parameter.VAR_KEYWORD
    )

    @functools.wraps(wrapped)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__: bool = hide_tb

        for name in _root_fixtures:
            if name in declared and name not in kwargs:
                raise TypeError(
                    f'{wrapped.__name__!r} declares {name!r} but it was '
                    'not provided (is the tractor pytest plugin loaded?)'
                )

        root_kwargs: dict[str, Any] = {
            name: kwargs.get(name)
            for name in _root_fixtures
        }
        # only what the test itself declared is passed on
        for name in extra:
            if not has_var_kw:
                kwargs.pop(name, None)

        reg_addr = root_kwargs['reg_addr']
        start_method = root_kwargs['start_method']
        debug_mode: bool = bool(root_kwargs['debug_mode'] or False)

        if (
            platform.system() == 'Windows'
            and start_method not in (None, 'trio')
        ):
            raise ValueError(
                f'Spawn backend {start_method!r} is not supported on '
                'Windows, only `trio` is.'
            )

        import trio
        import tractor

        async def _main() -> Any:
            with trio.fail_after(timeout):
                async with tractor.open_root_actor(
                    registry_addrs=[reg_addr] if reg_addr else None,
                    loglevel=root_kwargs['loglevel'],
                    start_method=start_method,
                    debug_mode=debug_mode,
                ):
                    return await wrapped(*args, **kwargs)

        return trio.run(_main)

    # `functools.wraps()` set `__wrapped__`; an explicit signature
    # makes pytest (and `inspect`) see the extra fixture too.
    wrapper.__signature__ = sig.replace(parameters=params)
    return wrapper
