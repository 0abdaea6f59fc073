"""Egress IP ownership: rendezvous hashing and Lease-based liveness."""

from __future__ import annotations

import collections

import pytest

from antrea_egress.election import LEASE_PREFIX, Liveness, assign, owner, ranked

pytestmark = pytest.mark.unit

NODES = [f"node{i}" for i in range(1, 6)]
IPS = [f"10.10.{i // 250}.{i % 250}" for i in range(1000)]


def test_every_agent_agrees_whatever_order_it_lists_nodes_in():
    for ip in IPS[:50]:
        assert owner(ip, NODES) == owner(ip, list(reversed(NODES))) == owner(ip, set(NODES))
    assert owner("10.0.0.1", []) is None


def test_ips_spread_evenly_over_nodes():
    counts = collections.Counter(owner(ip, NODES) for ip in IPS)
    assert set(counts) == set(NODES)
    assert max(counts.values()) < 1.3 * len(IPS) / len(NODES)


def test_a_node_leaving_moves_only_its_own_ips_and_coming_back_restores_them():
    before = {ip: owner(ip, NODES) for ip in IPS}
    after = {ip: owner(ip, [n for n in NODES if n != "node3"]) for ip in IPS}
    moved = {ip for ip in IPS if before[ip] != after[ip]}
    assert moved == {ip for ip in IPS if before[ip] == "node3"}
    assert {ip: owner(ip, NODES) for ip in IPS} == before


def lease(node: str, renew: str, duration: int = 5) -> dict:
    return {"metadata": {"name": LEASE_PREFIX + node},
            "spec": {"holderIdentity": node, "renewTime": renew,
                     "leaseDurationSeconds": duration}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_node_is_alive_while_its_renewals_keep_coming_by_our_own_clock():
    clock = Clock()
    live = Liveness(clock)
    live.observe(lease("a", "2020-01-01T00:00:00.000000Z"))  # its clock is far behind: no matter
    live.observe(lease("b", "2020-01-01T00:00:00.000000Z"))
    assert live.alive() == {"a", "b"}
    clock.now += 3
    live.observe(lease("a", "2020-01-01T00:00:03.000000Z"))  # renewed
    live.observe(lease("b", "2020-01-01T00:00:00.000000Z"))  # the same renewal again
    assert live.next_expiry() == pytest.approx(2.0)
    clock.now += 2.5
    assert live.alive() == {"a"}
    assert live.next_expiry() == pytest.approx(2.5)


def test_a_deleted_lease_is_dead_at_once_and_other_leases_are_ignored():
    live = Liveness(Clock())
    live.observe(lease("a", "t1"))
    live.observe({"metadata": {"name": "kube-controller-manager"},
                  "spec": {"holderIdentity": "x", "renewTime": "t", "leaseDurationSeconds": 15}})
    assert live.alive() == {"a"}
    live.forget(lease("a", "t1"))
    assert live.alive() == set() and live.next_expiry() is None


def test_capacity_sends_ips_past_a_full_node_and_every_agent_agrees():
    ips = {f"10.10.0.{i}": ["a", "b", "c"] for i in range(1, 10)}
    unlimited = assign(ips, lambda _n: 255)
    assert unlimited == {ip: owner(ip, ["a", "b", "c"]) for ip in ips}
    limited = assign(ips, lambda n: 1 if n == "a" else 255)
    assert sum(1 for n in limited.values() if n == "a") == 1
    assert set(limited) == set(ips)
    # Preference is kept where room allows: an IP leaves "a" only for its next choice.
    for ip, node in limited.items():
        if unlimited[ip] == "a" and node != "a":
            assert node == ranked(ip, ["a", "b", "c"])[1]
    assert assign(dict(reversed(list(ips.items()))), lambda n: 1 if n == "a" else 255) == \
        limited
    # No room anywhere: the rest stay unassigned.
    assert len(assign(ips, lambda _n: 2)) == 6
