"""Node IPAM allocation logic, without a server."""

from __future__ import annotations

import pytest

from antrea_lab.controllers.nodeipam import (
    CidrAllocator,
    CidrExhaustedError,
    NodeCidrs,
    node_event,
    pod_cidrs,
)

pytestmark = pytest.mark.unit


def node(name: str, *cidrs: str) -> dict:
    spec = {"podCIDRs": list(cidrs), "podCIDR": cidrs[0]} if cidrs else {}
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "spec": spec}


def test_allocates_first_free_subnet_in_order() -> None:
    alloc = CidrAllocator("10.244.0.0/16", 24)
    assert [alloc.allocate() for _ in range(3)] == ["10.244.0.0/24", "10.244.1.0/24",
                                                   "10.244.2.0/24"]


def test_released_subnet_is_reused_first() -> None:
    alloc = CidrAllocator("10.244.0.0/16", 24)
    for _ in range(3):
        alloc.allocate()
    alloc.release("10.244.1.0/24")
    assert alloc.allocate() == "10.244.1.0/24"
    assert alloc.allocate() == "10.244.3.0/24"


def test_restart_rebuild_skips_existing_assignments() -> None:
    cidrs = NodeCidrs(["10.244.0.0/16"])
    for n in (node("a", "10.244.0.0/24"), node("b", "10.244.2.0/24"), node("c")):
        cidrs.occupy_node(n)
    assert cidrs.allocate_node() == ["10.244.1.0/24"]
    assert cidrs.allocate_node() == ["10.244.3.0/24"]


def test_foreign_cidr_is_not_counted() -> None:
    alloc = CidrAllocator("10.244.0.0/16", 24)
    assert not alloc.occupy("192.168.0.0/24")
    assert not alloc.occupy("10.244.0.0/25")
    assert alloc.allocate() == "10.244.0.0/24"


def test_exhaustion_raises_and_release_recovers() -> None:
    alloc = CidrAllocator("10.244.0.0/23", 24)
    assert alloc.capacity == 2
    alloc.allocate()
    alloc.allocate()
    with pytest.raises(CidrExhaustedError, match="no free /24"):
        alloc.allocate()
    alloc.release("10.244.0.0/24")
    assert alloc.allocate() == "10.244.0.0/24"


def test_dual_stack_gives_one_cidr_per_family() -> None:
    cidrs = NodeCidrs(["10.244.0.0/16", "fd00:10:244::/56"], 24, 64)
    assert cidrs.allocate_node() == ["10.244.0.0/24", "fd00:10:244::/64"]
    assert cidrs.allocate_node() == ["10.244.1.0/24", "fd00:10:244:1::/64"]


def test_dual_stack_exhaustion_is_all_or_nothing() -> None:
    cidrs = NodeCidrs(["10.244.0.0/16", "fd00:10:244::/63"], 24, 64)
    cidrs.allocate_node()
    cidrs.allocate_node()
    with pytest.raises(CidrExhaustedError):
        cidrs.allocate_node()
    v4 = cidrs.allocators[0]
    assert v4.used() == 2  # the IPv4 subnet taken in the failed attempt was given back


def test_release_node_frees_all_its_cidrs() -> None:
    cidrs = NodeCidrs(["10.244.0.0/16", "fd00:10:244::/56"], 24, 64)
    got = cidrs.allocate_node()
    cidrs.release_node(node("a", *got))
    assert cidrs.allocate_node() == got


def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError):
        CidrAllocator("10.244.0.0/16", 8)
    with pytest.raises(ValueError):
        NodeCidrs(["10.244.0.0/16", "10.245.0.0/16"])


def test_pod_cidrs_falls_back_to_singular_field() -> None:
    assert pod_cidrs({"spec": {"podCIDR": "10.244.5.0/24"}}) == ["10.244.5.0/24"]
    assert pod_cidrs({"spec": {}}) == []


def test_exhaustion_event_names_the_node() -> None:
    ev = node_event(node("n1"), "CIDRNotAvailable", "full", "cidrAllocator")
    assert ev["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": "n1",
                                    "uid": "uid-n1"}
    assert ev["reason"] == "CIDRNotAvailable"
    assert ev["metadata"]["namespace"] == "default"
