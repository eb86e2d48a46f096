'''
Test-suite configuration.

The `tractor._testing.pytest` plugin (options, fixtures, markers) is
loaded via `-p` in `pyproject.toml`'s pytest `addopts`; only extra
plugins go here.

'''
pytest_plugins = ['pytester']
