'''
Multi-line text renderings of runtime objects (actors, contexts,
channels) and of tracebacks and call sites, for logs and debugging.
'''
from __future__ import annotations

import sys
import textwrap
import traceback
from typing import (
    Any,
    TYPE_CHECKING,
)

import trio

if TYPE_CHECKING:
    from tractor._context import Context
    from tractor.ipc import Channel
    from tractor.runtime._runtime import Actor


def _block(head: str, fields: dict[str, Any], indent: int = 2) -> str:
    pad = ' ' * indent
    lines = [f'{pad}{name}: {value}' for name, value in fields.items()]
    return '\n'.join([f'{head}(', *lines, ')'])


def pformat_boxed_tb(
    tb_str: str,
    fields_str: str|None = None,
    field_prefix: str = ' |_',
    tb_box_indent: int|None = None,
    tb_body_indent: int = 1,
) -> str:
    '''
    A traceback in a box (as remote errors show theirs): optional
    `fields_str` lines above, the traceback's lines prefixed by `' | '`.
    '''
    body = textwrap.indent(tb_str.rstrip('\n'), ' ' * tb_body_indent)
    boxed = '\n'.join(
        [' +------ traceback ------']
        + [f' |{line}' for line in body.splitlines()]
        + [' +-------------------------']
    )
    if tb_box_indent:
        boxed = textwrap.indent(boxed, ' ' * tb_box_indent)
    if fields_str:
        fields = '\n'.join(
            line if line.startswith(field_prefix) else f'{field_prefix}{line}'
            for line in fields_str.splitlines()
        )
        return f'{fields}\n{boxed}'
    return boxed


def pformat_caller_frame(stack_limit: int = 1, box_tb: bool = True) -> str:
    '''The call stack of our caller (its last `stack_limit` frames).'''
    frames = traceback.format_stack(sys._getframe(1), limit=stack_limit)
    text = ''.join(frames)
    return pformat_boxed_tb(text) if box_tb else text


def pformat_cs(cs: trio.CancelScope, var_name: str = 'cs') -> str:
    '''A cancel scope's state.'''
    return _block(f'{var_name}: trio.CancelScope', {
        'cancel_called': cs.cancel_called,
        'cancelled_caught': cs.cancelled_caught,
        'shield': cs.shield,
        'deadline': cs.deadline,
    })


def pformat_chan(chan: Channel) -> str:
    '''A channel: its peer, both ends and state.'''
    aid = chan.aid
    return _block('Channel', {
        'peer': aid.reprol(sin_uuid=False) if aid else '<no handshake>',
        'laddr': chan.laddr,
        'raddr': chan.raddr,
        'maddr': chan.maddr,
        'connected': chan.connected(),
    })


def pformat_ctx(ctx: Context) -> str:
    '''An IPC context: the dialog, its peer and its outcome so far.'''
    peer = ctx.chan.aid
    return _block('Context', {
        'cid': ctx.cid,
        'side': ctx.side,
        'target': ctx._nsf,
        'peer': peer.reprol(sin_uuid=False) if peer else None,
        'cancel_called': ctx.cancel_called,
        'canceller': ctx.canceller,
        'maybe_error': repr(ctx.maybe_error),
        'outcome': repr(ctx.outcome),
    })


def pformat_actor(actor: Actor) -> str:
    '''An actor: identity, addresses, its peers, children and tasks.'''
    server = actor.ipc_server
    nurseries = {id(an): an for an in actor._actoruid2nursery.values()}
    children = [
        uid[0] for an in nurseries.values() for uid in an._children
    ]
    return _block(type(actor).__name__, {
        'aid': actor.aid.reprol(sin_uuid=False),
        'is_root': actor.is_root,
        'is_registrar': actor.is_registrar,
        'spawn_method': actor.spawn_method,
        'accept_addrs': actor.accept_addrs if server else [],
        'reg_addrs': actor.reg_addrs,
        'enable_modules': list(actor.enable_modules),
        'children': children,
        'rpc_tasks': len(actor._rpc_tasks),
        'contexts': len(actor._contexts),
        'cancel_called': actor.cancel_called,
    })
