'''
Where the debugger (`tractor.devx.debug`, a room above the core) plugs
into the runtime: the core only calls what is installed here, and never
imports the debugger.

`installed` stays `None` in an actor that is not in debug mode, so every
call site costs one attribute test, and nothing on the per-message path
looks at it at all.
'''
from __future__ import annotations

from typing import (
    Any,
    Protocol,
    TYPE_CHECKING,
)

if TYPE_CHECKING:
    from tractor._context import Context
    from tractor.ipc import Channel
    from ._runtime import Actor


class DebuggerHooks(Protocol):
    '''What the core asks the debugger, at the few points it matters.'''

    async def crashed(
        self,
        actor: Actor,
        err: BaseException,
        ctx: Context|None,
    ) -> None:
        '''
        An RPC task (or the root's body) failed with `err`: maybe open a
        post-mortem REPL before the error travels on.
        '''

    async def repl_in_use(self) -> bool:
        '''Whether some actor of the tree is in (or about to enter) a REPL.'''

    async def wait_for_tty(self) -> None:
        '''
        Block until no actor of the tree holds the tty lock, so teardown
        never cancels or kills an actor under the user's fingers. Returns
        at once when the lock's holder is gone.
        '''

    async def wait_for_local_repl(self) -> None:
        '''Block while a task of this actor is in a REPL (or waits for one).'''

    def peer_disconnected(self, chan: Channel, graceful: bool) -> None:
        '''
        A peer's channel, served by this actor, ended (`graceful`: the peer
        closed it at a message boundary). Once per connection, sync.
        '''

    async def before_ctx_cancel(self, ctx: Context) -> None:
        '''
        `Portal.open_context()` is about to cancel the peer's side of `ctx`
        (its block ended with an error): wait for a REPL open in the tree
        to end first, so it is not cancelled under the user.
        '''


installed: DebuggerHooks|None = None

# the root's outermost cancel scope (set by `open_root_actor()`): the
# debugger shields it while a REPL is open anywhere in the tree, so an
# outside cancellation (e.g. a timeout around the root) waits for the
# user instead of tearing the tree down under the REPL
root_scope: Any = None


async def maybe_wait_for_tty() -> None:
    '''The teardown's wait for a released tty lock (no-op without debugger).'''
    hooks = installed
    if hooks is not None:
        await hooks.wait_for_tty()


async def repl_in_use() -> bool:
    hooks = installed
    return hooks is not None and await hooks.repl_in_use()


def _set(hooks: Any) -> Any:
    '''Install `hooks` (or `None`); returns what was installed before.'''
    global installed
    previous, installed = installed, hooks
    return previous
