'''Settings the spawn backends read from the environment.'''
import os


def env_count(name: str, default: int) -> int:
    '''A count from env var `name` (negative reads as 0); unset or not a number: `default`.'''
    try:
        return max(0, int(os.environ[name]))
    except (KeyError, ValueError):
        return default
