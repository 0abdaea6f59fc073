"""Port ranges as (value, mask) matches; ipBlocks minus excepts."""

from __future__ import annotations

import ipaddress

import pytest

from antrea_core.agent.networkpolicy.ipblocks import block_cidrs, peer_cidrs
from antrea_core.agent.networkpolicy.portmask import covered_ports, port_masks
from antrea_core.apis.controlplane import IPBlock

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("start", "end"), [
    (80, 80), (0, 65535), (1000, 1999), (1, 65535), (32768, 60999), (8080, 8089),
    (65535, 65535), (0, 0), (1023, 1025),
])
def test_port_masks_cover_exactly_the_range(start: int, end: int):
    blocks = port_masks(start, end)
    assert covered_ports(blocks) == set(range(start, end + 1))
    # Minimal: no two blocks could merge into one aligned block.
    assert len(blocks) <= 2 * 16


def test_port_masks_known_shapes():
    assert port_masks(80) == [(80, 0xFFFF)]
    assert port_masks(0, 65535) == [(0, 0)]
    assert port_masks(8080, 8087) == [(8080, 0xFFF8)]
    # 1000-1023 (8+16), 1024-1535, 1536-1791, 1792-1919, 1920-1983, 1984-1999
    assert port_masks(1000, 1999) == [(1000, 0xFFF8), (1008, 0xFFF0), (1024, 0xFE00),
                                      (1536, 0xFF00), (1792, 0xFF80), (1920, 0xFFC0),
                                      (1984, 0xFFF0)]


def test_port_masks_reject_bad_ranges():
    with pytest.raises(ValueError):
        port_masks(90, 80)
    with pytest.raises(ValueError):
        port_masks(1, 70000)


def test_ipblock_except_is_cut_out():
    nets = block_cidrs(IPBlock("10.0.0.0/16", ("10.0.1.0/24", "10.0.128.0/17")))
    covered = {int(a) for n in nets for a in (n.network_address, n.broadcast_address)}
    assert all(not n.overlaps(ipaddress.ip_network("10.0.1.0/24")) for n in nets)
    assert all(not n.overlaps(ipaddress.ip_network("10.0.128.0/17")) for n in nets)
    total = sum(n.num_addresses for n in nets)
    assert total == 2**16 - 2**8 - 2**15
    assert covered  # non-empty
    assert ipaddress.ip_network("10.0.0.0/24") in nets


def test_ipblock_fully_excepted_or_unrelated_except():
    assert block_cidrs(IPBlock("10.1.0.0/24", ("10.0.0.0/8",))) == []
    assert block_cidrs(IPBlock("10.1.0.0/24", ("192.168.0.0/16", "fd00::/8"))) == [
        ipaddress.ip_network("10.1.0.0/24")]


def test_peer_cidrs_mix_pod_ips_and_blocks():
    assert peer_cidrs(["10.0.0.5", "fd00::5"], [IPBlock("192.168.0.0/30", ("192.168.0.1/32",))]) \
        == frozenset({"10.0.0.5/32", "fd00::5/128", "192.168.0.0/32", "192.168.0.2/31"})
