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
