'''
A long-lived "service" actor.

`start_actor()` spawns a daemon: it has no main task of its own and just
serves RPC requests until someone cancels it. Module-level state in the
daemon survives between calls, so it can act like a tiny key-value store.

'''
import trio
import tractor


# lives in the daemon's process once it imports this module
_store: dict[str, int] = {}


async def put(key: str, value: int) -> None:
    _store[key] = value


async def incr(key: str, by: int = 1) -> int:
    _store[key] = _store.get(key, 0) + by
    return _store[key]


async def snapshot() -> dict[str, int]:
    return dict(_store)


async def main() -> None:
    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'kv_service',
            # expose this module's functions to the daemon's RPC
            enable_modules=[__name__],
        )

        await portal.run(put, key='apples', value=3)
        for _ in range(4):
            await portal.run(incr, key='pears')
        await portal.run(incr, key='apples', by=10)

        state = await portal.run(snapshot)
        print(f'service state: {state}')
        assert state == {'apples': 13, 'pears': 4}

        # the root's copy of `_store` was never touched: different process
        assert _store == {}

        # daemons live until cancelled; ask it to shut down.
        acked: bool = await portal.cancel_actor()
        print(f'service cancelled: {acked}')


if __name__ == '__main__':
    trio.run(main)
