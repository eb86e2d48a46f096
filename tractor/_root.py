'''
The root actor: the entry point that turns a plain trio program into the
top of an actor tree.
'''
from __future__ import annotations

import importlib
import os
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncIterator,
    Callable,
)

import trio

from tractor import log
from tractor._exceptions import RuntimeFailure
from tractor.discovery._api import _probe_registry_addrs
from tractor.discovery._registry import Registrar
from tractor.devx import (
    _greenback,
    _stackscope,
)
from tractor.ipc._auth import (
    resolve_secret,
    set_secret,
)
from tractor.ipc._addr import (
    default_lo_addrs,
    wrap_address,
)
from tractor.runtime import (
    _debug_hooks,
    _state,
    _supervise,
)
from tractor.runtime._supervise import merge_module_paths
from tractor.runtime._boot import async_main
from tractor.runtime._runtime import Actor
from tractor.spawn import (
    _spawn,
    _subint,
    _subint_pool,
)
from tractor.trionics._eg import (
    collapse_eg,
    is_multi_cancelled,
)

logger = log.get_logger()

# every root serves the tree-wide tty lock (`tractor.devx.debug`)
_TTY_LOCK_MODULE: str = 'tractor.devx.debug._tty_lock'


def _not_only_cancelled(err: BaseException) -> bool:
    return not (isinstance(err, trio.Cancelled) or is_multi_cancelled(err))


def _bind_addrs_for(
    registrar: bool,
    tpt_bind_addrs: list[Any],
    reg_addrs: list[Any],
    name: str,
) -> list[Any]:
    '''Where a root listens: its registry addresses too when it is the registrar.'''
    if registrar:
        addrs = list(tpt_bind_addrs)
        for addr in reg_addrs:
            if addr not in addrs:
                addrs.append(addr)
        return addrs
    if tpt_bind_addrs:
        return list(tpt_bind_addrs)
    return [
        type(addr).get_random(bindspace=addr.bindspace, name=name)
        for addr in reg_addrs
    ]


async def _elect_registrar(reg_addrs: list[Any], ensure_registry: bool) -> list[Any]:
    '''The registry addresses a registrar answers at (empty: we become it).'''
    registrars, occupied = await _probe_registry_addrs(reg_addrs)
    if registrars and ensure_registry:
        raise RuntimeError(
            f'`ensure_registry=True` but registry socket(s) already bound: {registrars!r}'
        )
    if not registrars and occupied:
        raise RuntimeError(
            f'Registry address(es) {occupied!r} are occupied but did not answer '
            'as a registrar'
        )
    return registrars


@asynccontextmanager
async def open_root_actor(
    *,
    tpt_bind_addrs: list[Any]|None = None,
    registry_addrs: list[Any]|None = None,
    enable_transports: list[str]|None = None,
    name: str|None = 'root',
    start_method: str|None = None,
    debug_mode: bool = False,
    maybe_enable_greenback: bool = False,
    enable_stack_on_sig: bool = False,
    loglevel: str|None = None,
    enable_modules: list[str]|None = None,
    rpc_module_paths: list[str]|None = None,
    ensure_registry: bool = False,
    hide_tb: bool = True,
    debug_filter: Callable[[BaseException], bool] = _not_only_cancelled,
    secret: str|bytes|None = None,
    subint_spares: int|None = None,
    subint_eager: bool|None = None,
) -> AsyncIterator[Actor]:
    '''
    Start this process's actor runtime as the root of a tree, becoming the
    tree's registrar unless one already answers at the registry address.
    Yields the root `Actor`; tears the runtime down on exit.

    `start_method` (overridden by `$TRACTOR_SPAWN_METHOD`) becomes the
    process default spawn backend, used by every nursery opened without
    one (`open_nursery(start_method=...)` picks another per nursery);
    `None` keeps the current default.

    `secret` is what every peer of this tree must prove it holds before
    anything it sends is acted on (children get it from their parent);
    default: `$TRACTOR_SECRET`, else the per-user secret file shared by
    all this user's programs (see "Security model" in the README).

    `enable_stack_on_sig` makes every actor of the tree dump its task
    tree to stderr on SIGUSR1 (needs `stackscope`);
    `maybe_enable_greenback` gives every task of the tree a `greenback`
    portal (needs `greenback`); `hide_tb` hides this frame from pytest
    tracebacks.

    `debug_mode=True` turns the multi-process debugger on for the whole
    tree (on every spawn backend): `tractor.pause()`, crash REPLs in the
    failing actor and each parent on the way up, one REPL at a time.
    `debug_filter(err)` says which errors escaping the block open the
    root's crash REPL (default: all but pure cancellation).

    `subint_spares` (default `$TRACTOR_SUBINT_SPARES`, else 1) is how many
    warm sub-interpreters this process keeps ready for `subint` spawns
    (0: none); `subint_eager=True` (or `$TRACTOR_SUBINT_EAGER=1`) starts
    warming them when the root opens instead of at the first `subint`
    spawn. Both apply to this root's process until it closes.
    '''
    __tracebackhide__: bool = hide_tb
    if _state.current_actor(err_on_no_runtime=False) is not None:
        raise RuntimeFailure(
            'An actor runtime is already running in this process; '
            'a second root actor can not be opened'
        )
    # fail before anything starts when an enabled tool is not installed
    if enable_stack_on_sig:
        _stackscope._import_stackscope()
    if maybe_enable_greenback:
        _greenback.import_greenback()

    rtvs = _state._runtime_vars
    tree_secret = resolve_secret(secret)

    if enable_transports is None:
        enable_transports = list(rtvs['_enable_tpts'])
    else:
        rtvs['_enable_tpts'] = list(enable_transports)
    if len(enable_transports) != 1:
        raise RuntimeError(
            f'Exactly one transport is supported (no multi-transport support '
            f'yet), got {enable_transports!r}'
        )

    modules = merge_module_paths(enable_modules, rpc_module_paths)
    if _TTY_LOCK_MODULE not in modules:
        modules.append(_TTY_LOCK_MODULE)

    env_level = os.environ.get('TRACTOR_LOGLEVEL')
    if env_level and loglevel and env_level.upper() != loglevel.upper():
        logger.info(f'$TRACTOR_LOGLEVEL={env_level} overrides loglevel={loglevel!r}')
    loglevel = (env_level or loglevel or log.get_loglevel()).upper()
    log.get_console_log(loglevel)

    env_method = os.environ.get('TRACTOR_SPAWN_METHOD')
    if env_method and start_method and env_method != start_method:
        logger.warning(
            f'$TRACTOR_SPAWN_METHOD={env_method} overrides start_method={start_method!r}'
        )
    start_method = env_method or start_method
    if start_method is not None:
        _spawn.try_set_start_method(start_method)

    reg_addrs = [
        wrap_address(addr)
        for addr in (registry_addrs or default_lo_addrs(enable_transports))
    ]
    mismatched = [
        addr for addr in reg_addrs if addr.proto_key not in enable_transports
    ]
    if mismatched:
        listed = ''.join(
            f'\n  {addr!r} (proto {addr.proto_key!r})' for addr in mismatched
        )
        raise ValueError(
            f'`registry_addrs` has addresses whose transport is not in '
            f'`enable_transports={enable_transports!r}`:{listed}\n'
            f'Either add their protos to `enable_transports`, or pass '
            f'`registry_addrs` of an enabled transport.'
        )


    # peers of the tree, the registry probe's included, prove this secret
    previous_secret = set_secret(tree_secret)
    try:
        registrars = await _elect_registrar(reg_addrs, ensure_registry)
    except BaseException:
        set_secret(previous_secret)
        raise

    bind = [wrap_address(addr) for addr in (tpt_bind_addrs or [])]
    is_registrar = not registrars
    actor_type = Registrar if is_registrar else Actor
    actor = actor_type(
        name or ('registrar' if is_registrar else 'anonymous'),
        enable_modules=modules,
        loglevel=loglevel,
        registry_addrs=[addr.unwrap() for addr in (registrars or reg_addrs)],
        spawn_method=_spawn._spawn_method,
    )
    accept_addrs = _bind_addrs_for(
        is_registrar, bind, registrars or reg_addrs, actor.name,
    )
    rtvs['_is_root'] = True
    rtvs['_debug_mode'] = bool(debug_mode)
    rtvs['_registry_addrs'] = list(actor.reg_addrs)
    # (children inherit these, and their boot hooks act on them)
    rtvs['use_stackscope'] = enable_stack_on_sig
    rtvs['use_greenback'] = maybe_enable_greenback
    _state._set_current_actor(actor)
    pool_settings = _subint_pool.configure(subint_spares, subint_eager)
    try:
        if _subint_pool.EAGER and not _subint.UNAVAILABLE:
            _subint_pool.fill(_subint.interp_config)
        # the debugger shields the whole root from outside cancellation (a
        # timeout around it, ...) while a REPL is open in the tree
        with trio.CancelScope() as _debug_hooks.root_scope:
            async with collapse_eg(), trio.open_nursery() as tn:
                accepted = await tn.start(async_main, actor, accept_addrs)
                # a cancel request from a peer (e.g. `portal.cancel_actor()` to
                # a daemon) ends the body too, which then exits normally
                tn.start_soon(_end_body_once_cancelled, actor, tn.cancel_scope)
                rtvs['_root_addrs'] = list(accepted)
                rtvs['_root_mailbox'] = accepted[0]
                if maybe_enable_greenback:
                    # the body's task started before the portals were bestowed
                    await _greenback.ensure_portal()
                try:
                    yield actor
                except BaseException as err:
                    hooks = _debug_hooks.installed
                    if debug_mode and hooks is not None and debug_filter(err):
                        # shielded inside: the runtime may be cancelling already
                        await hooks.crashed(actor, err, None)
                    if _not_only_cancelled(err):
                        logger.runtime(f'Root actor crashed: {err!r}')
                    raise
                finally:
                    await actor.cancel(None)
    finally:
        _subint_pool.configure(*pool_settings)
        set_secret(previous_secret)
        rtvs['_debug_mode'] = False
        rtvs['use_stackscope'] = False
        rtvs['use_greenback'] = False
        rtvs['_root_addrs'] = []
        rtvs['_root_mailbox'] = (None, None)
        _debug_hooks.root_scope = None
        _state._set_current_actor(None)


async def _end_body_once_cancelled(actor: Actor, body_scope: trio.CancelScope) -> None:
    await actor._cancel_complete.wait()
    body_scope.cancel()


def run_daemon(
    enable_modules: list[str],
    name: str|None = 'root',
    registry_addrs: list[Any]|None = None,
    start_method: str|None = None,
    debug_mode: bool = False,
    **kwargs,
) -> None:
    '''Run a root actor serving `enable_modules` until it is cancelled.'''
    for path in enable_modules:
        importlib.import_module(path)

    async def _serve() -> None:
        async with open_root_actor(
            registry_addrs=registry_addrs,
            name=name,
            start_method=start_method,
            debug_mode=debug_mode,
            enable_modules=enable_modules,
            **kwargs,
        ):
            await trio.sleep_forever()

    trio.run(_serve)


# let the runtime layer open a root implicitly without importing us
_supervise._root_opener = open_root_actor
