'''
Logging for the actor runtime (and for projects built on it).

This is the bottom layer of the package: it imports nothing from the
rest of `tractor` (not even lazily) and keeps its own import cheap
(no `asyncio`, no `colorlog` until a console handler prints a record).

Loggers form a tree rooted at the "package" logger (default
`'tractor'`); each sub-package gets a child logger, e.g.
`'tractor.ipc'`. Records carry extra fields describing the emitting
actor and task (`actor_name`, `actor_uid`, `actor`, `task`). The actor
is resolved through hooks that the runtime installs:

* `_actor_name_getter() -> str|None`: name of the current actor,
* `_actor_uid_getter() -> tuple|str|None` (optional): its uid,

both left as `None` outside a runtime, in which case the fields read
`'no actor context'`.

'''
from __future__ import annotations

import logging
import sys
import warnings
from typing import (
    Any,
    Callable,
)


__all__ = [
    'BOLD_PALETTE',
    'CUSTOM_LEVELS',
    'DATE_FORMAT',
    'LOG_FORMAT',
    'STD_PALETTE',
    'StackLevelAdapter',
    'add_log_level',
    'apply_console_log_levels',
    'apply_logspec',
    'at_least_level',
    'console_log_levels',
    'get_console_log',
    'get_logger',
    'get_loglevel',
    'logspec_levels',
    'parse_logspec',
]

# library-wide default console level; the test plugin (and users) may
# override it by assignment.
_default_loglevel: str = 'ERROR'

_proj_name: str = 'tractor'

# Hooks set by the runtime (see module doc). Kept as plain module
# globals so that this module never has to import the runtime.
_actor_name_getter: Callable[[], str | None] | None = None
_actor_uid_getter: Callable[[], Any] | None = None

_no_actor: str = 'no actor context'

# logger name -> level, for every logger this process gave a console
# handler: what its child actors set up the same way (see
# `console_log_levels()`)
_console_levels: dict[str, str | int] = {}

# custom levels: name -> numeric level. `IO` is added below through
# `add_log_level()` (exercising the same path users take).
CUSTOM_LEVELS: dict[str, int] = {
    'TRANSPORT': 5,
    'RUNTIME': 15,
    'DEVX': 17,
    'CANCEL': 22,
    'PDB': 500,
}

# level name -> `colorlog` colour.
STD_PALETTE: dict[str, str] = {
    'CRITICAL': 'red',
    'ERROR': 'red',
    'PDB': 'white',
    'WARNING': 'yellow',
    'CANCEL': 'yellow',
    'INFO': 'green',
    'DEVX': 'cyan',
    'RUNTIME': 'white',
    'DEBUG': 'white',
    'TRANSPORT': 'cyan',
}

# `colorlog` "secondary" palette, used by the `%(bold_log_color)s`
# placeholder in `LOG_FORMAT`.
BOLD_PALETTE: dict[str, dict[str, str]] = {
    'bold': {
        level: f'bold_{colour}'
        for level, colour in STD_PALETTE.items()
    },
}

# The message itself is deliberately left uncoloured so that tools
# matching on log text see it verbatim.
LOG_FORMAT: str = (
    '%(log_color)s%(asctime)s%(reset)s '
    '%(bold_log_color)s%(levelname)s%(reset)s '
    '%(log_color)s[%(actor_name)s|%(task)s]%(reset)s '
    '%(log_color)s%(filename)s:%(lineno)d%(reset)s '
    '%(message)s'
)
# `LOG_FORMAT` minus the colour placeholders, for when `colorlog` is
# not installed.
_PLAIN_LOG_FORMAT: str = (
    '%(asctime)s %(levelname)s [%(actor_name)s|%(task)s] '
    '%(filename)s:%(lineno)d %(message)s'
)
DATE_FORMAT: str = '%b %d %H:%M:%S'

# standard `logging` level names, never re-registered as custom ones.
_STD_LEVELS: frozenset[str] = frozenset({
    'CRITICAL', 'FATAL', 'ERROR', 'WARN', 'WARNING', 'INFO', 'DEBUG',
    'NOTSET',
})


def _level_to_int(level: str | int) -> int:
    '''
    Resolve a level given by (case-insensitive) name or number.

    Raises `ValueError` for unknown names.

    '''
    if isinstance(level, bool):
        raise ValueError(f'Not a log level: {level!r}')
    if isinstance(level, int):
        return level
    if isinstance(level, str):
        key: str = level.strip().upper()
        if key in CUSTOM_LEVELS:
            return CUSTOM_LEVELS[key]
        std: int | None = logging.getLevelNamesMapping().get(key)
        if std is not None:
            return std
        if key.isdigit():
            return int(key)
    raise ValueError(f'Unknown log level: {level!r}')


def _level_name(level: str | int) -> str:
    '''
    Lower-case name of a level (as `loglevel=` args expect).

    '''
    num: int = _level_to_int(level)
    name = logging.getLevelName(num)
    return str(name).lower()


def _current_task_name() -> str:
    '''
    Name of the current `trio` task, else of the current thread.

    `trio` is only consulted when something else already imported it.

    '''
    trio = sys.modules.get('trio')
    if trio is not None:
        try:
            return trio.lowlevel.current_task().name
        except Exception:  # not in a task (or trio half-imported)
            pass
    import threading  # already imported by `logging`
    return threading.current_thread().name


def _actor_fields() -> dict[str, Any]:
    '''
    Per-record fields describing the emitting actor and task.

    Never raises: a broken hook just yields the placeholder.

    '''
    name: str | None = None
    uid: Any = None
    getter = _actor_name_getter
    if getter is not None:
        try:
            name = getter()
        except Exception:
            name = None
    uid_getter = _actor_uid_getter
    if uid_getter is not None and name is not None:
        try:
            uid = uid_getter()
        except Exception:
            uid = None

    actor_name: str = name if name is not None else _no_actor
    return {
        'actor_name': actor_name,
        'actor_uid': uid if uid is not None else actor_name,
        'actor': actor_name,
        'task': _current_task_name(),
    }


class StackLevelAdapter(logging.LoggerAdapter):
    '''
    A `LoggerAdapter` adding actor/task fields to each record and one
    method per custom level (`.transport()`, `.runtime()`, `.devx()`,
    `.io()`, `.cancel()`, `.pdb()`, plus any `add_log_level()` adds).

    Custom-level methods report their caller's file and line, and
    return before doing any work when the level is disabled.

    '''
    def __init__(
        self,
        logger: logging.Logger,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(logger, extra or {})

    def process(
        self,
        msg: Any,
        kwargs: dict[str, Any],
    ) -> tuple[Any, dict[str, Any]]:
        # only called for records that pass the level check.
        fields: dict[str, Any] = _actor_fields()
        if self.extra:
            fields.update(self.extra)
        user_extra = kwargs.get('extra')
        if user_extra:
            fields.update(user_extra)
        kwargs['extra'] = fields
        return msg, kwargs

    @property
    def level(self) -> str:
        '''
        Effective level of the underlying logger, lower-cased name.

        '''
        return _level_name(self.logger.getEffectiveLevel())

    def at_least_level(self, level: str | int) -> bool:
        '''
        Would a record at `level` be emitted by this logger?

        '''
        return self.isEnabledFor(_level_to_int(level))

    def __repr__(self) -> str:
        return (
            f'<{type(self).__name__} {self.logger.name!r} '
            f'level={self.level!r}>'
        )


def _mk_level_method(
    name: str,
    levelno: int,
) -> Callable[..., None]:
    def emit(
        self: StackLevelAdapter,
        msg: Any,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if not self.isEnabledFor(levelno):
            return
        # skip this frame so the record shows our caller's location
        # (`logging`'s own frames are skipped by `findCaller()`).
        kwargs['stacklevel'] = kwargs.get('stacklevel', 1) + 1
        self.log(levelno, msg, *args, **kwargs)

    meth: str = name.lower()
    emit.__name__ = meth
    emit.__qualname__ = f'StackLevelAdapter.{meth}'
    emit.__doc__ = f'Log `msg` at the custom `{name}` ({levelno}) level.'
    emit._tractor_level = name  # marks methods made here
    return emit


def add_log_level(
    name: str,
    value: int,
    color: str = 'white',
) -> None:
    '''
    Register a custom level in one call: `CUSTOM_LEVELS`,
    `logging.addLevelName()`, both palettes and a lower-case
    `StackLevelAdapter` method of the same name.

    Calling it again with the same arguments is a no-op; with other
    ones it updates the registration.

    '''
    key: str = name.strip().upper()
    if not key.isidentifier():
        raise ValueError(f'Invalid log level name: {name!r}')
    if key in _STD_LEVELS:
        raise ValueError(f'Cannot redefine standard log level {key!r}')
    value = int(value)

    meth_name: str = key.lower()
    existing = StackLevelAdapter.__dict__.get(meth_name)
    if (
        existing is not None
        and getattr(existing, '_tractor_level', None) != key
    ) or (
        existing is None
        and hasattr(StackLevelAdapter, meth_name)
    ):
        raise ValueError(
            f'Level name {key!r} clashes with '
            f'`StackLevelAdapter.{meth_name}`'
        )

    CUSTOM_LEVELS[key] = value
    logging.addLevelName(value, key)
    STD_PALETTE[key] = color
    BOLD_PALETTE['bold'][key] = f'bold_{color}'
    if (
        existing is None
        or getattr(existing, '_tractor_levelno', None) != value
    ):
        meth = _mk_level_method(key, value)
        meth._tractor_levelno = value
        setattr(StackLevelAdapter, meth_name, meth)


for _name, _value in list(CUSTOM_LEVELS.items()):
    add_log_level(_name, _value, STD_PALETTE.get(_name, 'white'))
add_log_level('IO', 21, 'purple')
del _name, _value


def get_loglevel() -> str:
    '''
    The library's default console log level.

    '''
    return _default_loglevel


def at_least_level(
    log: logging.Logger | logging.LoggerAdapter,
    level: str | int,
) -> bool:
    '''
    `log.isEnabledFor(level)`, accepting custom level names.

    Honours `Logger.disabled` and `logging.disable()`.

    '''
    return log.isEnabledFor(_level_to_int(level))


def _caller_module(frame: Any) -> tuple[str | None, str | None]:
    '''
    `(module name, package name)` of the code running in `frame`.

    '''
    if frame is None:
        return None, None
    globs: dict[str, Any] = frame.f_globals
    modname: str | None = globs.get('__name__')
    pkg: str | None = globs.get('__package__')
    if pkg is None and modname:
        # no import-system metadata: assume a plain module.
        pkg = modname.rpartition('.')[0]
    return modname, pkg


def _sub_name_from_pkg(
    caller_pkg: str | None,
    pkg_name: str,
) -> str | None:
    '''
    Sub-logger name for code living in package `caller_pkg`: its
    path below `pkg_name`, or `None` (the pkg logger itself).

    '''
    if not caller_pkg:
        return None
    if caller_pkg == pkg_name:
        return None
    prefix: str = f'{pkg_name}.'
    if caller_pkg.startswith(prefix):
        return caller_pkg[len(prefix):] or None
    return None


def _get_logger(
    *,
    name: str | None,
    pkg_name: str,
    mk_sublog: bool,
    caller_frame: Any,
    strict: bool,
) -> logging.Logger:
    root: logging.Logger = logging.getLogger(pkg_name)

    modname, caller_pkg = _caller_module(caller_frame)
    sub: str | None
    if name is None:
        sub = (
            _sub_name_from_pkg(caller_pkg, pkg_name)
            if mk_sublog
            else None
        )
    else:
        sub = name.strip()
        prefix: str = f'{pkg_name}.'
        if sub == pkg_name:
            sub = ''
        elif sub.startswith(prefix):
            sub = sub[len(prefix):]
            # `get_logger(__name__)` is idiomatic; only flag explicit
            # names that redundantly repeat the pkg.
            if name != modname:
                msg: str = (
                    f'Logger name {name!r} repeats the package '
                    f'name {pkg_name!r}; using {sub!r} below it.'
                )
                if strict:
                    raise ValueError(msg)
                warnings.warn(msg, stacklevel=3)

        # drop a trailing component naming the calling module itself,
        # so all modules of a (sub)pkg share that pkg's logger (a
        # pkg's `__init__` is not "a module of" itself).
        leaf: str | None = (
            modname.rpartition('.')[2]
            if modname and modname != caller_pkg
            else None
        )
        if (
            leaf
            and sub
            and sub.rpartition('.')[2] == leaf
        ):
            sub = sub.rpartition('.')[0]

    if not sub:
        return root
    return logging.getLogger(f'{pkg_name}.{sub}')


def get_logger(
    name: str | None = None,
    pkg_name: str = _proj_name,
    _root_name: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    subsys_spec: str | bool | None = None,
    mk_sublog: bool = True,
    _strict_debug: bool = False,
) -> StackLevelAdapter:
    '''
    Return a `StackLevelAdapter` over the `pkg_name` logger or one of
    its children.

    * `name=None` (with `mk_sublog`): a child named after the
      caller's package path below `pkg_name` (modules of one
      sub-package share a logger; top-level modules get the pkg
      logger itself).
    * an explicit `name` is used as the child's name, minus a
      leading `f'{pkg_name}.'` (which warns, except for the
      idiomatic `get_logger(__name__)`) and minus a trailing
      component equal to the calling module's own name.
    * `logger`: wrap this logger (or adapter's logger) instead.
    * `subsys_spec`: a log-spec (see `parse_logspec()`) applied to
      the returned logger: its catch-all level, else the level of the
      entry naming this logger.

    '''
    if _root_name is not None:
        warnings.warn(
            '`get_logger(_root_name=...)` is deprecated, '
            'use `pkg_name=` instead.',
            DeprecationWarning,
            stacklevel=2,
        )
        pkg_name = _root_name

    if logger is not None:
        if isinstance(logger, StackLevelAdapter):
            adapter = logger
        elif isinstance(logger, logging.LoggerAdapter):
            adapter = StackLevelAdapter(logger.logger)
        else:
            adapter = StackLevelAdapter(logger)
    else:
        adapter = StackLevelAdapter(
            _get_logger(
                name=name,
                pkg_name=pkg_name,
                mk_sublog=mk_sublog,
                caller_frame=sys._getframe(1),
                strict=_strict_debug,
            )
        )

    if subsys_spec not in (None, False):
        specs = parse_logspec(subsys_spec, pkg_name=pkg_name)
        level = specs.get(None)
        sub: str = adapter.logger.name.removeprefix(f'{pkg_name}.')
        if sub in specs:
            level = specs[sub]
        if level is not None:
            adapter.setLevel(_level_to_int(level))

    return adapter


class _StderrStream:
    '''
    Stand-in for "whatever `sys.stderr` currently is", so handlers
    survive stream swaps (e.g. pytest's per-test capture).

    '''
    def isatty(self) -> bool:
        try:
            return sys.stderr.isatty()
        except Exception:
            return False


class _ConsoleHandler(logging.StreamHandler):
    '''
    A `StreamHandler` always writing to the current `sys.stderr`.

    '''
    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        # the formatter (and `colorlog`) loads with the first record
        # printed: every actor has this handler, most never print
        if self.formatter is None:
            self.setFormatter(_mk_console_formatter())
        return super().format(record)


def _writes_to_stderr(handler: logging.Handler) -> bool:
    if isinstance(handler, _ConsoleHandler):
        return True
    return (
        isinstance(handler, logging.StreamHandler)
        and getattr(handler, 'stream', None) is sys.stderr
    )


def _fill_actor_fields(record: logging.LogRecord) -> bool:
    '''
    Handler filter: give records which did not come through a
    `StackLevelAdapter` (plain `logging` calls) the actor/task fields
    `LOG_FORMAT` needs.

    '''
    if not hasattr(record, 'actor_name'):
        for key, val in _actor_fields().items():
            if not hasattr(record, key):
                setattr(record, key, val)
    return True


def _mk_console_handler() -> logging.Handler:
    handler = _ConsoleHandler()
    handler.addFilter(_fill_actor_fields)
    return handler


def _mk_console_formatter() -> logging.Formatter:
    try:
        import colorlog  # lazy: only once a console is wanted
    except ImportError:
        formatter: logging.Formatter = logging.Formatter(
            fmt=_PLAIN_LOG_FORMAT,
            datefmt=DATE_FORMAT,
        )
    else:
        formatter = colorlog.ColoredFormatter(
            fmt=LOG_FORMAT,
            datefmt=DATE_FORMAT,
            log_colors=STD_PALETTE,
            secondary_log_colors=BOLD_PALETTE,
            reset=True,
            # colour only when stderr is a terminal
            stream=_StderrStream(),
        )
    return formatter


def get_console_log(
    level: str | int | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    **kwargs: Any,
) -> StackLevelAdapter:
    '''
    Like `get_logger(**kwargs)` (or wrap `logger`) and, when `level`
    is given, set it and make sure one colourised `sys.stderr`
    handler is attached to the underlying logger.

    '''
    if logger is not None:
        log: StackLevelAdapter = get_logger(logger=logger)
    else:
        strict: bool = kwargs.pop('_strict_debug', False)
        pkg_name: str = kwargs.pop('pkg_name', _proj_name)
        root_name = kwargs.pop('_root_name', None)
        if root_name is not None:
            warnings.warn(
                '`get_logger(_root_name=...)` is deprecated, '
                'use `pkg_name=` instead.',
                DeprecationWarning,
                stacklevel=2,
            )
            pkg_name = root_name
        subsys_spec = kwargs.pop('subsys_spec', None)
        log = StackLevelAdapter(
            _get_logger(
                name=kwargs.pop('name', None),
                pkg_name=pkg_name,
                mk_sublog=kwargs.pop('mk_sublog', True),
                caller_frame=sys._getframe(1),
                strict=strict,
            )
        )
        if kwargs:
            raise TypeError(
                f'Unexpected keyword argument(s): {sorted(kwargs)}'
            )
        if subsys_spec not in (None, False):
            log = get_logger(logger=log, subsys_spec=subsys_spec,
                             pkg_name=pkg_name)

    if level is None:
        return log

    log.setLevel(_level_to_int(level))
    base: logging.Logger = log.logger
    if not any(_writes_to_stderr(h) for h in base.handlers):
        base.addHandler(_mk_console_handler())
    _console_levels[base.name] = (
        level.strip().lower() if isinstance(level, str) else level
    )
    return log


def console_log_levels() -> dict[str, str | int]:
    '''
    What this process logs to the console: `{logger name: level}` for
    every logger given a console handler (by `get_console_log()` with a
    level, or `apply_logspec()`). Child actors are handed it and set up
    theirs the same way (`apply_console_log_levels()`).
    '''
    return dict(_console_levels)


def apply_console_log_levels(levels: dict[str, str | int]) -> None:
    '''
    Log to the console like the process whose `console_log_levels()`
    these are: each logger at its level with one console handler. A
    logger below another listed one stops propagating, as
    `apply_logspec()` does, so its records are not printed twice.
    '''
    for name, level in levels.items():
        logger = logging.getLogger(name)
        get_console_log(level=level, logger=logger)
        if any(name.startswith(f'{other}.') for other in levels):
            logger.propagate = False


def logspec_levels(
    spec: str | int | None,
    pkg_name: str = _proj_name,
) -> dict[str, str | int]:
    '''
    A log-spec (see `parse_logspec()`) as `{logger name: level}`, the
    shape of `console_log_levels()`: the catch-all level names the
    package logger.
    '''
    return {
        pkg_name if sub is None else f'{pkg_name}.{sub}': level
        for sub, level in parse_logspec(spec, pkg_name=pkg_name).items()
    }


def parse_logspec(
    spec: str | int | bool | None,
    default_level: str | int | None = None,
    pkg_name: str = _proj_name,
) -> dict[str | None, str | int]:
    '''
    Parse a log-spec into `{sub_name|None: level}`:

    * `False`/`None`/`''` -> `{}`
    * `True` -> `{None: default_level or 'cancel'}`
    * `'info'` (or a level number) -> `{None: 'info'}`
    * `'devx:runtime,trionics:cancel'` -> per sub-logger levels;
      every part of a multi-part spec needs a `:`, and a part may not
      name the package itself (`ValueError`).

    Level names are validated and lower-cased.

    '''
    if spec is None or spec is False or spec == '':
        return {}
    if spec is True:
        return {None: _norm_level(default_level or 'cancel')}
    if isinstance(spec, int):
        return {None: spec}
    if not isinstance(spec, str):
        raise TypeError(f'Invalid log-spec type: {spec!r}')

    text: str = spec.strip().strip('\'"').strip()
    if ':' not in text and ',' not in text:
        return {None: _norm_level(text)}

    out: dict[str | None, str | int] = {}
    for part in text.split(','):
        part = part.strip()
        if not part:
            continue
        sub, sep, level = part.partition(':')
        sub, level = sub.strip(), level.strip()
        if not sep or not sub or not level:
            raise ValueError(
                f'Invalid log-spec part {part!r} in {spec!r}: '
                f"expected '<sub-logger>:<level>'"
            )
        if sub == pkg_name:
            raise ValueError(
                f'Log-spec part {part!r} names the package '
                f'{pkg_name!r} itself; pass a bare level instead.'
            )
        sub = sub.removeprefix(f'{pkg_name}.')
        out[sub] = _norm_level(level)
    return out


def _norm_level(level: str | int) -> str | int:
    _level_to_int(level)  # validate
    if isinstance(level, str):
        return level.strip().lower()
    return level


def apply_logspec(
    spec: str | int | bool | None,
    default_level: str | int | None = None,
    pkg_name: str = _proj_name,
) -> tuple[str | int | None, dict[str | None, StackLevelAdapter]]:
    '''
    Enable console logging per `parse_logspec(spec)` entry.

    The catch-all level (else `default_level`) goes to the package
    logger; each `sub: level` entry gets its own handler on
    `f'{pkg_name}.{sub}'`, which then stops propagating (so records
    are not printed twice nor filtered by the package level).

    Returns `(primary_level, {sub_name|None: adapter})`.

    '''
    specs = parse_logspec(spec, default_level=default_level,
                          pkg_name=pkg_name)
    primary = specs.pop(None, None)
    if primary is None and default_level is not None:
        primary = _norm_level(default_level)

    adapters: dict[str | None, StackLevelAdapter] = {}
    if primary is not None:
        adapters[None] = get_console_log(
            level=primary,
            logger=logging.getLogger(pkg_name),
        )
    for sub, level in specs.items():
        sublog = get_console_log(
            level=level,
            logger=logging.getLogger(f'{pkg_name}.{sub}'),
        )
        sublog.logger.propagate = False
        adapters[sub] = sublog

    return primary, adapters
