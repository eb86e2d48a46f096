'''
Structured-concurrency helpers on top of trio.
'''
from ._broadcast import (
    AsyncReceiver as AsyncReceiver,
    BroadcastReceiver as BroadcastReceiver,
    Lagged as Lagged,
    broadcast_receiver as broadcast_receiver,
)
from ._eg import (
    collapse_eg as collapse_eg,
    collapse_exc as collapse_exc,
    get_collapsed_eg as get_collapsed_eg,
    is_multi_cancelled as is_multi_cancelled,
)
from ._mngrs import (
    gather_contexts as gather_contexts,
    maybe_open_context as maybe_open_context,
    maybe_open_nursery as maybe_open_nursery,
)
from ._taskc import (
    BoxedMaybeException as BoxedMaybeException,
    maybe_raise_from_masking_exc as maybe_raise_from_masking_exc,
    start_or_cancel as start_or_cancel,
)
from ._subproc import supervise_run_process as supervise_run_process
from . import patches as patches
