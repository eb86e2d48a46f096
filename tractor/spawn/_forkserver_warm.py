'''
Imported last by the `mp_forkserver` server
(`_forkserver.FORKSERVER_PRELOAD`), once, before it forks anything:
everything a child still loaded after the fork on its way to serving
(its process title) is loaded here instead, trio is run once (see
`_forkserver_spares.warm_trio()`: its one-off work then is done for
every child), then the server's objects are frozen out of the garbage
collector, so children neither scan nor copy-on-write them
(`gc.freeze()`, as recommended before forking).

Never imported anywhere else: it only has side effects.
'''
import gc

try:
    import setproctitle  # noqa: F401  (process actors title themselves)
except ImportError:
    pass

from tractor.spawn._forkserver_spares import warm_trio

# no thread is left behind (checked in the tests): forking stays safe
warm_trio()
gc.collect()
gc.freeze()
