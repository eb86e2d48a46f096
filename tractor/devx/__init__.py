'''
Developer tooling. The tree-wide debugger (`pause()`, crash REPLs) is not
built yet; `debug.BoxedMaybeException` is what exists so far.
'''
