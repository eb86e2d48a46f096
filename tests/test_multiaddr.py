'''
Multiaddrs: `tractor.discovery.mk_maddr()` gives `multiaddr.Multiaddr`
objects, `parse_maddr()` reads them (or their text) back, and both forms
work wherever an address is accepted (`registry_addrs`,
`tpt_bind_addrs`, `bind_addrs`, `find_actor`), over tcp and uds.
'''
from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import trio
from multiaddr import Multiaddr

import tractor
from tractor.discovery import (
    mk_maddr,
    parse_endpoints,
    parse_maddr,
)
from tractor.discovery._addr import (
    get_address_cls,
    wrap_address,
)
from tractor.ipc._tcp import TCPAddress
from tractor.ipc._uds import UDSAddress


def test_mk_and_parse_maddr():
    tcp = TCPAddress('127.0.0.1', 1616)
    maddr = mk_maddr(tcp)
    assert isinstance(maddr, Multiaddr)
    assert str(maddr) == '/ip4/127.0.0.1/tcp/1616'
    assert [p.name for p in maddr.protocols()] == ['ip4', 'tcp']
    assert parse_maddr(maddr) == tcp
    assert parse_maddr('/ip4/127.0.0.1/tcp/1616') == tcp

    v6 = TCPAddress('::1', 80)
    assert str(mk_maddr(v6)) == '/ip6/::1/tcp/80'
    assert parse_maddr(mk_maddr(v6)) == v6

    uds = UDSAddress.from_addr(('/tmp/some dir', 'actor@123.sock'))
    maddr = mk_maddr(uds)
    # the binary form holds the raw path, the text form percent-encodes it
    assert maddr.to_bytes().endswith(b'/tmp/some dir/actor@123.sock'[1:])
    assert str(maddr) == '/unix/tmp/some%20dir/actor%40123.sock'
    assert parse_maddr(maddr) == uds
    assert parse_maddr(str(maddr)) == uds

    for bad in ('/ip4/127.0.0.1/udp/53', '/dns4/example.org/tcp/80', 'nonsense'):
        with pytest.raises(ValueError):
            parse_maddr(bad)

    assert wrap_address(mk_maddr(tcp)) == tcp
    assert parse_endpoints({'svc': [mk_maddr(uds), ('127.0.0.1', 1616)]}) == {
        'svc': [uds, tcp],
    }


def test_import_tractor_leaves_multiaddr_unimported():
    code = (
        'import sys, tractor, tractor.discovery; '
        'assert "multiaddr" not in sys.modules, "multiaddr imported"'
    )
    subprocess.run([sys.executable, '-c', code], check=True, timeout=30)


async def accept_maddrs() -> list[str]:
    return [
        str(mk_maddr(wrap_address(addr)))
        for addr in tractor.current_actor().accept_addrs
    ]


def test_maddrs_accepted_as_addresses(reg_addr, start_method, tpt_proto):
    addr_cls = get_address_cls(tpt_proto)
    reg_maddr = mk_maddr(wrap_address(reg_addr))
    root_bind = addr_cls.get_random(name='root')
    child_bind = mk_maddr(addr_cls.get_random(name='child'))
    if tpt_proto == 'tcp':
        # a fixed port, so that we know what the child listens on
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        child_bind = Multiaddr(f'/ip4/127.0.0.1/tcp/{port}')

    async def main():
        with trio.fail_after(20):
            async with tractor.open_nursery(
                registry_addrs=[reg_maddr],
                tpt_bind_addrs=[str(mk_maddr(root_bind))],
                start_method=start_method,
            ) as an:
                root = tractor.current_actor()
                assert wrap_address(reg_addr).unwrap() in [
                    tuple(a) for a in root.accept_addrs
                ]
                portal = await an.start_actor(
                    'child', enable_modules=[__name__], bind_addrs=[child_bind],
                )
                assert await portal.run(accept_maddrs) == [str(child_bind)]
                async with tractor.find_actor(
                    'child', registry_addrs=[reg_maddr],
                ) as found:
                    assert found is not None
                    assert await found.run(accept_maddrs) == [str(child_bind)]
                await portal.cancel_actor()

    trio.run(main)
