"""Egress IP allocation decisions (antrea_core.controller.egress.allocator), no API."""

from __future__ import annotations

import pytest

from antrea_core.apis.egress import Egress, ExternalIPPool
from antrea_core.controller.egress.allocator import Allocator, Condition, egress_requests

pytestmark = pytest.mark.unit


def pool(name: str, *ranges: dict) -> ExternalIPPool:
    return ExternalIPPool.from_obj({"metadata": {"name": name},
                                    "spec": {"ipRanges": list(ranges), "nodeSelector": {}}})


def egress(name: str, created: str = "2026-01-01T00:00:00Z", allocated: bool = False,
           **spec) -> tuple[Egress, list]:
    spec.setdefault("appliedTo", {"podSelector": {}})
    status = {"conditions": [{"type": "IPAllocated", "status": "True"}]} if allocated else {}
    e = Egress.from_obj({"metadata": {"name": name, "creationTimestamp": created},
                         "spec": spec, "status": status})
    return e, egress_requests(e, spec)


def reasons(result) -> dict[str, str]:
    return {name: c.reason for name, c in result.conditions.items()}


P = {"p": pool("p", {"cidr": "10.0.0.0/29"})}  # 10.0.0.1 .. 10.0.0.6


def test_allocates_lowest_free_ip_oldest_first_and_counts_usage() -> None:
    alloc = Allocator()
    result = alloc.compute(P, [egress("b", "2026-01-02T00:00:00Z", externalIPPool="p"),
                               egress("a", "2026-01-01T00:00:00Z", externalIPPool="p"),
                               egress("named", externalIPPool="p", egressIP="10.0.0.2")])
    assert result.spec_ips == {"a": {-1: "10.0.0.1"}, "b": {-1: "10.0.0.3"}}
    assert set(reasons(result).values()) == {"Allocated"}
    assert result.conditions["a"] == Condition(
        "True", "Allocated", "EgressIP 10.0.0.1 is allocated from ExternalIPPool p")
    assert result.usage == {"p": (6, 3)}


def test_a_pending_allocation_is_not_handed_out_twice_before_it_is_seen() -> None:
    alloc = Allocator()
    first = alloc.compute(P, [egress("a", externalIPPool="p")])
    # The spec write has not come back yet; another Egress arrives.
    second = alloc.compute(P, [egress("a", externalIPPool="p"),
                               egress("b", "2026-01-03T00:00:00Z", externalIPPool="p")])
    assert first.spec_ips == {"a": {-1: "10.0.0.1"}}
    assert second.spec_ips == {"a": {-1: "10.0.0.1"}, "b": {-1: "10.0.0.2"}}
    # Seen back: nothing left to write.
    third = alloc.compute(P, [egress("a", externalIPPool="p", egressIP="10.0.0.1"),
                              egress("b", externalIPPool="p", egressIP="10.0.0.2")])
    assert third.spec_ips == {} and third.usage == {"p": (6, 2)}


def test_conflict_goes_to_the_newcomer_even_when_older() -> None:
    alloc = Allocator()
    alloc.compute(P, [egress("young", "2026-02-01T00:00:00Z", externalIPPool="p",
                             egressIP="10.0.0.4")])
    result = alloc.compute(P, [
        egress("young", "2026-02-01T00:00:00Z", externalIPPool="p", egressIP="10.0.0.4"),
        egress("old", "2026-01-01T00:00:00Z", externalIPPool="p", egressIP="10.0.0.4")])
    assert reasons(result) == {"young": "Allocated", "old": "IPConflict"}
    assert "spec.egressIP 10.0.0.4" in result.conditions["old"].message
    assert "Egress young" in result.conditions["old"].message


def test_after_a_restart_the_allocated_condition_decides_conflicts() -> None:
    result = Allocator().compute(P, [
        egress("old", "2026-01-01T00:00:00Z", externalIPPool="p", egressIP="10.0.0.4"),
        egress("young", "2026-02-01T00:00:00Z", allocated=True, externalIPPool="p",
               egressIP="10.0.0.4")])
    assert reasons(result) == {"young": "Allocated", "old": "IPConflict"}
    assert result.spec_ips == {}


def test_out_of_range_not_found_and_exhausted() -> None:
    pools = {"tiny": pool("tiny", {"start": "10.1.0.1", "end": "10.1.0.1"}), **P}
    result = Allocator().compute(pools, [
        egress("far", externalIPPool="p", egressIP="192.0.2.1"),
        egress("network", externalIPPool="p", egressIP="10.0.0.0"),
        egress("ghost", externalIPPool="missing"),
        egress("t1", "2026-01-01T00:00:00Z", externalIPPool="tiny"),
        egress("t2", "2026-01-02T00:00:00Z", externalIPPool="tiny"),
        egress("manual", egressIP="192.0.2.9")])
    assert reasons(result) == {"far": "IPOutOfRange", "network": "IPOutOfRange",
                               "ghost": "PoolNotFound", "t1": "Allocated",
                               "t2": "PoolExhausted"}
    assert result.spec_ips == {"t1": {-1: "10.1.0.1"}}
    assert result.usage == {"tiny": (1, 1), "p": (6, 0)}
    assert "spec.egressIP 192.0.2.1" in result.conditions["far"].message


def test_release_on_delete_lets_a_waiting_egress_allocate() -> None:
    tiny = {"tiny": pool("tiny", {"start": "10.1.0.1", "end": "10.1.0.1"})}
    alloc = Allocator()
    result = alloc.compute(tiny, [
        egress("t1", "2026-01-01T00:00:00Z", externalIPPool="tiny", egressIP="10.1.0.1"),
        egress("t2", "2026-01-02T00:00:00Z", externalIPPool="tiny")])
    assert reasons(result)["t2"] == "PoolExhausted"
    result = alloc.compute(tiny, [egress("t2", "2026-01-02T00:00:00Z",
                                         externalIPPool="tiny")])
    assert result.spec_ips == {"t2": {-1: "10.1.0.1"}}
    assert alloc.held_by("t1") == {}


def test_pool_change_reallocates_only_what_this_controller_allocated() -> None:
    pools = {**P, "q": pool("q", {"cidr": "10.9.0.0/30"})}
    alloc = Allocator()
    alloc.compute(pools, [egress("a", externalIPPool="p", egressIP="10.0.0.1")])
    result = alloc.compute(pools, [egress("a", externalIPPool="q", egressIP="10.0.0.1")])
    assert result.spec_ips == {"a": {-1: "10.9.0.1"}}
    assert result.usage == {"p": (6, 0), "q": (2, 1)}
    # A fresh controller does not know the IP was its own: the user's IP is wrong.
    fresh = Allocator().compute(pools, [egress("a", externalIPPool="q", egressIP="10.0.0.1")])
    assert reasons(fresh) == {"a": "IPOutOfRange"}


def test_multi_pool_form_pairs_egress_ips_with_pools_by_index() -> None:
    pools = {**P, "q": pool("q", {"cidr": "10.9.0.0/30"})}
    result = Allocator().compute(pools, [
        egress("a", externalIPPools=["p", "q"], egressIPs=["", "10.9.0.2"]),
        egress("b", externalIPPools=["q", "p"])])
    assert result.spec_ips == {"a": {0: "10.0.0.1"}, "b": {0: "10.9.0.1", 1: "10.0.0.2"}}
    assert reasons(result) == {"a": "Allocated", "b": "Allocated"}
    bad = Allocator().compute(pools, [egress("c", externalIPPools=["p", "q"],
                                             egressIPs=["10.0.0.1", "10.0.0.2"])])
    assert reasons(bad) == {"c": "IPOutOfRange"}
    assert "spec.egressIPs[1]" in bad.conditions["c"].message


def test_allocating_from_a_slash_8_pool() -> None:
    big = {"big": pool("big", {"cidr": "10.0.0.0/8"})}
    result = Allocator().compute(big, [egress(f"e{i}", f"2026-01-01T00:00:{i:02d}Z",
                                              externalIPPool="big") for i in range(20)])
    assert result.spec_ips["e19"] == {-1: "10.0.0.20"}
    assert result.usage == {"big": (2**24 - 2, 20)}
