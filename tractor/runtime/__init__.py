'''
The actor runtime: the `Actor`, RPC dispatch, portals, nurseries and the
process-global runtime state.
'''
