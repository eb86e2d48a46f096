'''
Developer experience tooling: the multi-process debugger (tree-wide
tty lock + `pdbp` REPLs), crash handlers and diagnostics.

'''
