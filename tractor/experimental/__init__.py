'''
Experimental APIs: kept importable and working, but their shape may
still change.
'''
from ._pubsub import msgpub as msgpub
