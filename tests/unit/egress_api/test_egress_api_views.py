"""Typed views of Egress and ExternalIPPool (antrea_core.apis.egress), and set_condition."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from antrea_core.apis.egress import Egress, ExternalIPPool, set_condition

pytestmark = pytest.mark.unit


def pool(*ranges: dict, **spec) -> ExternalIPPool:
    return ExternalIPPool.from_obj({"metadata": {"name": "p", "uid": "u1"},
                                    "spec": {"ipRanges": list(ranges), **spec}})


def egress(**spec) -> Egress:
    spec.setdefault("appliedTo", {"podSelector": {}})
    return Egress.from_obj({"metadata": {"name": "e", "uid": "u2",
                                         "creationTimestamp": "2026-01-02T03:04:05Z"},
                            "spec": spec})


@pytest.mark.parametrize(("cidr", "size", "first", "last"), [
    ("10.0.0.0/28", 14, "10.0.0.1", "10.0.0.14"),
    ("10.0.0.0/30", 2, "10.0.0.1", "10.0.0.2"),
    ("10.0.0.0/31", 0, None, None),
    ("10.0.0.7/32", 0, None, None),
    ("10.0.0.5/29", 6, "10.0.0.1", "10.0.0.6"),  # host bits set: the network counts
    ("2001:db8::/126", 3, "2001:db8::1", "2001:db8::3"),  # IPv6 has no broadcast
    ("2001:db8::/128", 0, None, None),
])
def test_cidr_range_excludes_network_and_ipv4_broadcast(cidr, size, first, last) -> None:
    p = pool({"cidr": cidr})
    assert p.size() == size
    ips = list(p.ips())
    assert len(ips) == size
    assert (ips[0] if ips else None, ips[-1] if ips else None) == (first, last)
    if first:
        assert p.contains(first) and p.contains(last)
    network = ipaddress.ip_network(cidr, strict=False)
    assert not p.contains(str(network.network_address))


def test_start_end_ranges_keep_every_address_and_overlaps_count_once() -> None:
    p = pool({"start": "10.0.1.10", "end": "10.0.1.12"}, {"cidr": "10.0.0.0/30"},
             {"start": "10.0.1.11", "end": "10.0.1.13"})
    assert list(p.ips()) == ["10.0.0.1", "10.0.0.2", "10.0.1.10", "10.0.1.11", "10.0.1.12",
                             "10.0.1.13"]
    assert p.size() == 6
    assert [p.ip_at(i) for i in range(6)] == list(p.ips())
    assert [p.offset_of(ip) for ip in p.ips()] == list(range(6))
    assert not p.contains("10.0.1.14") and not p.contains("10.0.0.3")
    assert not p.contains("not an ip")
    with pytest.raises(IndexError):
        p.ip_at(6)


def test_a_slash_8_is_not_materialized() -> None:
    p = pool({"cidr": "10.0.0.0/8"}, {"cidr": "2001:db8::/64"})
    assert p.size() == 2**24 - 2 + 2**64 - 1
    assert list(itertools.islice(p.ips(), 3)) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert p.ip_at(2**24 - 3) == "10.255.255.254"
    assert p.ip_at(2**24 - 2) == "2001:db8::1"
    assert p.contains("10.200.3.4") and p.contains("2001:db8::ffff:1")
    assert not p.contains("10.255.255.255") and not p.contains("11.0.0.1")
    assert p.offset_of("2001:db8::2") == 2**24 - 1


def test_pool_subnet_info_and_node_selector() -> None:
    p = pool({"cidr": "10.0.0.0/28"}, nodeSelector={"matchLabels": {"egress": "yes"}},
             subnetInfo={"gateway": "10.0.0.1", "prefixLength": 24, "vlan": 10})
    assert (p.prefix_length, p.gateway, p.vlan) == (24, "10.0.0.1", 10)
    assert p.node_selector.matches({"egress": "yes"})
    assert not p.node_selector.matches({})
    everywhere = pool({"cidr": "10.0.0.0/28"})
    assert everywhere.prefix_length is None
    assert everywhere.node_selector.matches({"any": "node"})


@pytest.mark.parametrize(("ranges", "spec", "field"), [
    ([{"cidr": "10.0.0.0/28"}, {"start": "10.0.0.20", "end": "bogus"}], {},
     "spec.ipRanges[1].end"),
    ([{"start": "10.0.0.9", "end": "10.0.0.1"}], {}, "spec.ipRanges[0].end"),
    ([{"start": "10.0.0.1", "end": "2001:db8::1"}], {}, "spec.ipRanges[0].end"),
    ([{"cidr": "nonsense"}], {}, "spec.ipRanges[0].cidr"),
    ([{"cidr": "10.0.0.1"}], {}, "spec.ipRanges[0].cidr"),
    ([{"start": "10.0.0.1"}], {}, "spec.ipRanges[0].end"),
    ([{"cidr": "10.0.0.0/28", "start": "10.0.0.1", "end": "10.0.0.2"}], {},
     "spec.ipRanges[0]"),
    ([], {"subnetInfo": {"gateway": "10.0.0.1", "prefixLength": 33}},
     "spec.subnetInfo.prefixLength"),
    ([], {"subnetInfo": {"gateway": "x", "prefixLength": 24}}, "spec.subnetInfo.gateway"),
    ([], {"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Bad"}]}},
     "spec.nodeSelector.matchExpressions[0].operator"),
])
def test_bad_pools_raise_naming_the_field(ranges, spec, field) -> None:
    with pytest.raises(ValueError) as err:
        pool(*ranges, **spec)
    assert str(err.value).startswith(f"{field}: ")


def test_egress_view_fields() -> None:
    e = Egress.from_obj({
        "metadata": {"name": "web", "uid": "u", "creationTimestamp": "2026-01-02T03:04:05Z"},
        "spec": {"appliedTo": {"namespaceSelector": {"matchLabels": {"env": "prod"}}},
                 "egressIP": "2001:db8::0001", "egressIPs": ["", "10.0.0.2"],
                 "externalIPPool": "a", "externalIPPools": ["b", "a"],
                 "bandwidth": {"rate": "10M", "burst": "1M"}},
        "status": {"egressNode": "n1", "egressIP": "10.0.0.2",
                   "conditions": [{"type": "IPAllocated", "status": "True"}]}})
    assert (e.name, e.uid, e.created) == ("web", "u", "2026-01-02T03:04:05Z")
    assert e.pod_selector is None
    assert e.namespace_selector is not None and e.namespace_selector.matches({"env": "prod"})
    assert e.egress_ip == "2001:db8::1"  # normalized
    assert e.egress_ips == ("", "10.0.0.2")  # blanks kept: index i pairs with pool i
    assert e.pools == e.pool_names == ("a", "b")
    assert e.requested_ips == ("2001:db8::1", "10.0.0.2")
    assert (e.status_node, e.status_ip) == ("n1", "10.0.0.2")
    assert e.bandwidth == ("10M", "1M")
    assert e.condition("IPAllocated") == {"type": "IPAllocated", "status": "True"}
    assert e.condition("IPAssigned") is None
    assert not e.selects_nothing


def test_egress_selectors_absent_select_nothing_and_empty_selects_all() -> None:
    nothing = egress(appliedTo={})
    assert nothing.selects_nothing
    everything = egress(appliedTo={"podSelector": {}})
    assert everything.pod_selector is not None and everything.pod_selector.matches({})
    assert (everything.egress_ip, everything.egress_ips, everything.pools) == ("", (), ())


@pytest.mark.parametrize(("spec", "field"), [
    ({"egressIP": "10.0.0.300"}, "spec.egressIP"),
    ({"egressIPs": ["10.0.0.1", "x"]}, "spec.egressIPs[1]"),
    ({"egressIPs": "10.0.0.1"}, "spec.egressIPs"),
    ({"externalIPPool": 3}, "spec.externalIPPool"),
    ({"appliedTo": None}, "spec.appliedTo"),
    ({"appliedTo": {"podSelector": {"matchLabels": {"a": 1}}}},
     "spec.appliedTo.podSelector.matchLabels[a]"),
    ({"bandwidth": {"rate": "1M"}}, "spec.bandwidth"),
])
def test_bad_egresses_raise_naming_the_field(spec, field) -> None:
    with pytest.raises(ValueError) as err:
        egress(**spec)
    assert str(err.value).startswith(f"{field}: ")


def test_set_condition_merges_by_type_and_keeps_transition_time_on_same_status() -> None:
    status: dict = {"egressNode": "n1",
                    "conditions": [{"type": "IPAssigned", "status": "True",
                                    "lastTransitionTime": "2020-01-01T00:00:00Z",
                                    "reason": "Assigned", "message": "m"}]}
    assert set_condition(status, "IPAllocated", "False", "PoolExhausted", "full")
    assert not set_condition(status, "IPAllocated", "False", "PoolExhausted", "full")
    first = status["conditions"][1]["lastTransitionTime"]
    status["conditions"][1]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    assert set_condition(status, "IPAllocated", "False", "PoolNotFound", "gone")
    assert status["conditions"][1]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert set_condition(status, "IPAllocated", "True", "Allocated", "ok")
    assert status["conditions"][1]["lastTransitionTime"] >= first
    assert [c["type"] for c in status["conditions"]] == ["IPAssigned", "IPAllocated"]
    assert status["conditions"][0]["message"] == "m" and status["egressNode"] == "n1"
