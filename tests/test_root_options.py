'''
Every option of `open_root_actor()` / `open_nursery()` either works or
raises a clear error: `maybe_enable_greenback`, `enable_stack_on_sig`,
`hide_tb` and `debug_filter`.
'''
from __future__ import annotations

import sys

import pytest
import trio

import tractor
from tractor._testing import nursery_kwargs
from tractor.runtime import _state


def sync_helper() -> str:
    '''Sync code awaiting through the task's greenback portal.'''
    import greenback
    greenback.await_(trio.sleep(0.01))
    return f'awaited from sync code in {tractor.current_actor().name}'


async def call_sync_helper() -> str:
    return sync_helper()


def test_greenback_portals_in_every_task(reg_addr, start_method):
    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
                maybe_enable_greenback=True,
            ) as an:
                # the body's own task, and every RPC task of the children
                assert sync_helper() == 'awaited from sync code in root'
                portal = await an.start_actor('gb', enable_modules=[__name__])
                assert await portal.run(call_sync_helper) == (
                    'awaited from sync code in gb'
                )
                await portal.cancel_actor()
            assert not _state._runtime_vars['use_greenback']

    trio.run(main)


@pytest.mark.parametrize('option, module', [
    ('maybe_enable_greenback', 'greenback'),
    ('enable_stack_on_sig', 'stackscope'),
])
def test_tool_options_need_their_library(reg_addr, monkeypatch, option, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed

    async def main():
        with pytest.raises(ModuleNotFoundError, match=f'needs? .*{module}'):
            async with tractor.open_root_actor(
                registry_addrs=[reg_addr], **{option: True},
            ):
                raise AssertionError('must not start')
        assert _state.current_actor(err_on_no_runtime=False) is None

    trio.run(main)


def test_stack_on_sig_is_inherited(reg_addr, start_method):
    async def flags() -> bool:
        return _state._runtime_vars['use_stackscope']

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                **nursery_kwargs(reg_addr, start_method),
                enable_stack_on_sig=True,
            ) as an:
                portal = await an.start_actor('dumper', enable_modules=[__name__])
                assert await portal.run_from_ns(__name__, 'stackscope_flag')
                await portal.cancel_actor()
            assert not _state._runtime_vars['use_stackscope']

    trio.run(main)


async def stackscope_flag() -> bool:
    return _state._runtime_vars['use_stackscope']


def test_debug_filter_decides_on_the_root_crash_repl(reg_addr):
    '''
    `debug_filter(err)` is asked about an error escaping a debug-mode
    root; `False` means no crash REPL (the REPL itself is tested through a
    terminal in `test_debugger.py`), and the error is raised as always.
    '''
    seen: list[BaseException] = []

    def no_repl(err: BaseException) -> bool:
        seen.append(err)
        return False

    async def main():
        with trio.fail_after(30), pytest.raises(KeyError, match='filtered'):
            async with tractor.open_root_actor(
                registry_addrs=[reg_addr], debug_mode=True, debug_filter=no_repl,
            ):
                raise KeyError('filtered')

    trio.run(main)
    assert len(seen) == 1 and isinstance(seen[0], KeyError)


@pytest.mark.parametrize('hide_tb', [True, False])
def test_hide_tb_marks_the_root_frame(reg_addr, hide_tb):
    async def main():
        # (an error from the body keeps its own traceback; one raised by
        # the root itself shows, or hides, the root's frame)
        with pytest.raises(RuntimeError) as info:
            async with tractor.open_root_actor(
                registry_addrs=[reg_addr], hide_tb=hide_tb,
                enable_transports=['tcp', 'uds'],
            ):
                raise AssertionError('must not start')
        tb = info.value.__traceback__
        hidden = {}
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_name == 'open_root_actor':
                hidden['root'] = tb.tb_frame.f_locals.get('__tracebackhide__')
            tb = tb.tb_next
        assert hidden == {'root': hide_tb}

    trio.run(main)
