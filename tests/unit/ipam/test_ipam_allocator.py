"""Per-node IPAM: allocation rules, idempotence, persistence across restarts, exhaustion."""

from __future__ import annotations

import ipaddress
import json
import threading

import pytest

from antrea_core.agent.ipam.allocator import IPAMError, NodeIPAM, PoolExhausted

pytestmark = pytest.mark.unit


def addresses(allocation) -> list[str]:
    return [str(ip.address) for ip in allocation.ips]


def test_first_address_is_gateway_and_is_never_handed_out(tmp_path):
    ipam = NodeIPAM(["10.244.1.0/24"], tmp_path)
    first = ipam.allocate("c1", "eth0", "default/p1")
    assert addresses(first) == ["10.244.1.2/24"]
    assert str(first.ips[0].gateway) == "10.244.1.1"
    assert [str(g) for g in ipam.gateways] == ["10.244.1.1"]


def test_small_pool_never_gives_network_gateway_or_broadcast_and_exhaustion_names_cidr(
        tmp_path):
    ipam = NodeIPAM(["10.0.0.0/29"], tmp_path)  # .0 network, .1 gateway, .7 broadcast
    got = [str(ipam.allocate(f"c{i}", "eth0").ips[0].address.ip) for i in range(5)]
    assert got == [f"10.0.0.{n}" for n in range(2, 7)]
    with pytest.raises(PoolExhausted) as info:
        ipam.allocate("c-extra", "eth0")
    assert "10.0.0.0/29" in str(info.value)
    assert ipam.get("c-extra", "eth0") is None


def test_add_twice_returns_the_same_ips_and_del_twice_is_fine(tmp_path):
    ipam = NodeIPAM(["10.0.0.0/24"], tmp_path)
    a = ipam.allocate("c1", "eth0")
    assert ipam.allocate("c1", "eth0") == a
    assert ipam.release("c1", "eth0") == a
    assert ipam.release("c1", "eth0") is None
    assert ipam.get("c1", "eth0") is None


def test_ifname_is_part_of_the_key(tmp_path):
    ipam = NodeIPAM(["10.0.0.0/24"], tmp_path)
    assert addresses(ipam.allocate("c1", "eth0")) != addresses(ipam.allocate("c1", "net1"))


def test_released_address_is_not_reused_immediately(tmp_path):
    ipam = NodeIPAM(["10.0.0.0/24"], tmp_path)
    a = ipam.allocate("c1", "eth0")
    ipam.release("c1", "eth0")
    assert addresses(ipam.allocate("c2", "eth0")) != addresses(a)


def test_next_fit_wraps_around_to_freed_addresses(tmp_path):
    ipam = NodeIPAM(["10.0.0.0/29"], tmp_path)
    for i in range(5):
        ipam.allocate(f"c{i}", "eth0")
    ipam.release("c1", "eth0")  # 10.0.0.3
    assert addresses(ipam.allocate("c9", "eth0")) == ["10.0.0.3/29"]


def test_dual_stack_gives_one_address_per_family_ipv4_first(tmp_path):
    ipam = NodeIPAM(["fd00:10:244:1::/64", "10.244.1.0/24"], tmp_path)
    a = ipam.allocate("c1", "eth0")
    assert addresses(a) == ["10.244.1.2/24", "fd00:10:244:1::2/64"]
    assert [str(ip.gateway) for ip in a.ips] == ["10.244.1.1", "fd00:10:244:1::1"]


def test_ipv6_only(tmp_path):
    a = NodeIPAM(["fd00::/120"], tmp_path).allocate("c1", "eth0")
    assert addresses(a) == ["fd00::2/120"] and str(a.ips[0].gateway) == "fd00::1"


def test_dual_stack_exhaustion_of_one_family_rolls_back_the_other(tmp_path):
    ipam = NodeIPAM(["10.0.0.0/24", "fd00::/126"], tmp_path)  # v6: one usable (::2)
    ipam.allocate("c1", "eth0")
    with pytest.raises(PoolExhausted) as info:
        ipam.allocate("c2", "eth0")
    assert "fd00::/126" in str(info.value)
    ipam.release("c1", "eth0")
    # 10.0.0.3 was taken by c2's failed attempt and given back, so it is next.
    assert addresses(ipam.allocate("c3", "eth0")) == ["10.0.0.3/24", "fd00::2/126"]


def test_allocations_survive_a_restart(tmp_path):
    ipam = NodeIPAM(["10.0.0.0/24", "fd00::/64"], tmp_path)
    a = ipam.allocate("c1", "eth0", "default/web-0")
    ipam.allocate("c2", "eth0")
    ipam.release("c2", "eth0")
    again = NodeIPAM(["10.0.0.0/24", "fd00::/64"], tmp_path)
    assert again.get("c1", "eth0") == a
    assert again.get("c2", "eth0") is None
    # The cursor survives too: the next address is after c2's, not c2's again.
    assert addresses(again.allocate("c3", "eth0")) == ["10.0.0.4/24", "fd00::4/64"]
    assert again.allocate("c1", "eth0") == a


def test_state_is_written_atomically_without_leftover_temp_files(tmp_path):
    ipam = NodeIPAM(["10.0.0.0/24"], tmp_path)
    ipam.allocate("c1", "eth0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["allocations.json"]
    doc = json.loads((tmp_path / "allocations.json").read_text())
    assert doc["allocations"] == [{"containerID": "c1", "ifname": "eth0", "owner": "",
                                   "ips": ["10.0.0.2/24"]}]


def test_corrupt_state_refuses_to_start_naming_the_file(tmp_path):
    (tmp_path / "allocations.json").write_text("{truncated")
    with pytest.raises(IPAMError) as info:
        NodeIPAM(["10.0.0.0/24"], tmp_path)
    assert "allocations.json" in str(info.value)


def test_release_stale_frees_pods_deleted_while_the_agent_was_down(tmp_path):
    ipam = NodeIPAM(["10.0.0.0/24"], tmp_path)
    for cid in ("keep", "gone1", "gone2"):
        ipam.allocate(cid, "eth0")
    released = ipam.release_stale({"keep"})
    assert sorted(a.container_id for a in released) == ["gone1", "gone2"]
    restarted = NodeIPAM(["10.0.0.0/24"], tmp_path)
    assert [a.container_id for a in restarted.allocations()] == ["keep"]
    assert ipam.release_stale({"keep"}) == []


def test_changed_pod_cidr_keeps_old_records_for_del_without_occupying_new_pool(tmp_path):
    NodeIPAM(["10.0.0.0/24"], tmp_path).allocate("c1", "eth0")
    moved = NodeIPAM(["10.1.0.0/24"], tmp_path)
    assert addresses(moved.get("c1", "eth0")) == ["10.0.0.2/24"]
    assert addresses(moved.allocate("c2", "eth0")) == ["10.1.0.2/24"]
    assert moved.release("c1", "eth0") is not None


@pytest.mark.parametrize("cidrs,needle", [
    (["10.0.0.0/31"], "too small"), (["10.0.0.1/24"], "invalid"), ([], "no podCIDRs"),
    (["10.0.0.0/24", "10.1.0.0/24"], "one pod CIDR per IP family"),
])
def test_bad_pod_cidrs_are_rejected(tmp_path, cidrs, needle):
    with pytest.raises(IPAMError) as info:
        NodeIPAM(cidrs, tmp_path)
    assert needle in str(info.value)


def test_concurrent_allocations_never_share_an_address(tmp_path):
    ipam = NodeIPAM(["10.0.0.0/24"], tmp_path)
    results: list[str] = []

    def work(i: int) -> None:
        results.extend(addresses(ipam.allocate(f"c{i}", "eth0")))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 40
    net = ipaddress.ip_network("10.0.0.0/24")
    assert all(ipaddress.ip_interface(r).network == net for r in results)
