"""ClusterIP and NodePort allocation."""

from __future__ import annotations

import ipaddress
import random
import time

import pytest

from antrea_lab.apiserver.allocators import IPAllocator, PortAllocator
from antrea_lab.apiserver.errors import APIError

pytestmark = pytest.mark.unit


def test_small_range_never_hands_out_network_or_broadcast() -> None:
    alloc = IPAllocator("10.0.0.0/29", rng=random.Random(1))
    got = {alloc.allocate() for _ in range(6)}
    assert got == {f"10.0.0.{i}" for i in range(1, 7)}
    with pytest.raises(APIError) as e:
        alloc.allocate()
    assert e.value.code == 500 and "range is full" in e.value.message
    assert alloc.used() == 6


def test_requested_ip_taken_twice_is_invalid_with_kube_message() -> None:
    alloc = IPAllocator("10.96.0.0/16")
    assert alloc.allocate("10.96.0.10") == "10.96.0.10"
    with pytest.raises(APIError) as e:
        alloc.allocate("10.96.0.10", name="dns")
    err = e.value
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.causes[0].path == "spec.clusterIPs[0]"
    assert err.causes[0].message == ('Invalid value: "10.96.0.10": failed to allocate IP '
                                     '10.96.0.10: provided IP is already allocated')
    assert err.message.startswith('Service "dns" is invalid: spec.clusterIPs[0]: ')


@pytest.mark.parametrize("ip", ["10.97.0.1", "10.96.0.0", "10.96.255.255", "fd00::1", "junk"])
def test_requested_ip_outside_range_is_invalid(ip: str) -> None:
    alloc = IPAllocator("10.96.0.0/16")
    with pytest.raises(APIError) as e:
        alloc.allocate(ip)
    assert e.value.code == 422
    assert "is not in the valid range. The range of valid IPs is 10.96.0.0/16" in \
        e.value.causes[0].message


def test_release_makes_address_reusable_and_mark_restores_state() -> None:
    alloc = IPAllocator("10.96.0.0/16")
    ip = alloc.allocate()
    assert alloc.allocated(ip) and alloc.contains(ip)
    alloc.release(ip)
    assert not alloc.allocated(ip)
    assert alloc.allocate(ip) == ip
    fresh = IPAllocator("10.96.0.0/16")
    assert fresh.mark(ip) is True
    assert fresh.mark("192.168.0.1") is False
    with pytest.raises(APIError):
        fresh.allocate(ip)
    assert fresh.used() == 1


def test_reserved_address_is_not_dynamic_but_can_be_requested() -> None:
    alloc = IPAllocator("10.0.0.0/30", reserved=["10.0.0.1"])  # usable: .1 .2
    assert alloc.allocate() == "10.0.0.2"
    with pytest.raises(APIError):
        alloc.allocate()
    assert alloc.allocate("10.0.0.1") == "10.0.0.1"


def test_dynamic_allocation_prefers_the_upper_band() -> None:
    alloc = IPAllocator("10.96.0.0/16", rng=random.Random(7))
    # kube keeps min(max(16, 65534/16), 256) = 256 low addresses for static picks.
    for _ in range(200):
        off = int(ipaddress.ip_address(alloc.allocate())) - int(ipaddress.ip_address("10.96.0.0"))
        assert off > 256


def test_large_range_is_lazy_and_fast() -> None:
    start = time.perf_counter()
    alloc = IPAllocator("fd00:10:96::/108")
    ips = {alloc.allocate() for _ in range(2000)}
    assert len(ips) == 2000
    assert all(ipaddress.ip_address(i) in ipaddress.ip_network("fd00:10:96::/108") for i in ips)
    assert time.perf_counter() - start < 2.0


def test_nearly_full_range_still_finds_last_free_address() -> None:
    alloc = IPAllocator("10.1.0.0/22", rng=random.Random(3))
    ips = [alloc.allocate() for _ in range(alloc.size)]
    assert len(set(ips)) == alloc.size == 1022
    alloc.release(ips[500])
    assert alloc.allocate() == ips[500]


def test_node_ports_in_range_and_errors() -> None:
    ports = PortAllocator(30000, 32767, rng=random.Random(2))
    got = ports.allocate()
    assert 30000 <= got <= 32767 and ports.allocated(got)
    assert ports.allocate(30080) == 30080
    with pytest.raises(APIError) as e:
        ports.allocate(30080, field="spec.ports[1].nodePort", name="web")
    cause = e.value.causes[0]
    assert cause.path == "spec.ports[1].nodePort"
    assert cause.message == "Invalid value: 30080: provided port is already allocated"
    with pytest.raises(APIError) as e:
        ports.allocate(80)
    assert "The range of valid ports is 30000-32767" in e.value.causes[0].message
    ports.release(30080)
    assert not ports.allocated(30080)
    assert ports.mark(30080) and not ports.mark(29999)


def test_port_range_exhaustion() -> None:
    ports = PortAllocator(30000, 30002)
    assert sorted(ports.allocate() for _ in range(3)) == [30000, 30001, 30002]
    with pytest.raises(APIError) as e:
        ports.allocate()
    assert "range is full" in e.value.message
