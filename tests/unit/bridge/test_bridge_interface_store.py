"""The agent's InterfaceStore: index consistency and rebuilding from OVSDB rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from antrea_core.agent.bridge.interface_store import (
    InterfaceConfig,
    InterfaceStore,
    InterfaceType,
)
from antrea_core.plugins.context import PodInterface

pytestmark = pytest.mark.unit


@dataclass
class FakeRow:
    name: str
    ofport: int | None
    external_ids: Mapping[str, str] = field(default_factory=dict)
    type: str = ""
    mac_in_use: str = ""


def pod(i: int, ofport: int | None = None, cid: str | None = None,
        pod_name: str | None = None) -> InterfaceConfig:
    return InterfaceConfig.container(
        name=f"pod{i}-abcd", container_id=cid or f"cid{i}", pod_namespace="default",
        pod_name=pod_name or f"pod{i}", ips=(f"10.244.0.{i}", f"fd00::{i}"),
        mac=f"02:00:00:00:00:{i:02x}", ofport=ofport if ofport is not None else 10 + i)


def assert_consistent(store: InterfaceStore) -> None:
    """Every index points at entries present by name, and nothing else."""
    entries = list(store)
    assert len(store) == len(entries)
    for c in entries:
        assert store.get(c.name) is c
        if c.ofport is not None:
            assert store.get_by_ofport(c.ofport) is c
        if c.type is InterfaceType.CONTAINER:
            assert store.get_container(c.container_id) is c
            assert c in store.get_pod(c.pod_namespace, c.pod_name)
    assert len(store._by_ofport) == sum(1 for c in entries if c.ofport is not None)
    assert len(store._by_container) == sum(1 for c in entries if c.container_id)
    assert sum(len(v) for v in store._by_pod.values()) == len(store.containers())


def test_added_pod_is_found_by_name_container_pod_and_ofport():
    store = InterfaceStore()
    cfg = pod(1)
    store.add(cfg)
    assert store.get("pod1-abcd") is cfg
    assert store.get_container("cid1") is cfg
    assert store.get_pod("default", "pod1") == [cfg]
    assert store.get_by_ofport(11) is cfg
    assert "pod1-abcd" in store
    assert_consistent(store)


def test_delete_clears_every_index():
    store = InterfaceStore()
    store.add(pod(1))
    store.add(pod(2))
    removed = store.delete("pod1-abcd")
    assert removed is not None and removed.container_id == "cid1"
    assert store.get_container("cid1") is None
    assert store.get_pod("default", "pod1") == []
    assert store.get_by_ofport(11) is None
    assert store.delete("pod1-abcd") is None
    assert [c.name for c in store] == ["pod2-abcd"]
    assert_consistent(store)


def test_readding_same_name_replaces_old_indexes():
    store = InterfaceStore()
    store.add(pod(1, ofport=11))
    store.add(pod(1, ofport=40, cid="cid1-new"))
    assert store.get_by_ofport(11) is None
    assert store.get_by_ofport(40).container_id == "cid1-new"
    assert store.get_container("cid1") is None
    assert len(store.get_pod("default", "pod1")) == 1
    assert_consistent(store)


def test_same_container_under_new_interface_name_replaces_old_entry():
    store = InterfaceStore()
    store.add(pod(1))
    moved = InterfaceConfig.container("other-if", "cid1", "default", "pod1", ["10.244.0.1"],
                                      "02:00:00:00:00:01", ofport=99)
    store.add(moved)
    assert store.get("pod1-abcd") is None
    assert store.get_container("cid1") is moved
    assert_consistent(store)


def test_recreated_sandbox_keeps_both_interfaces_of_the_pod_until_old_is_deleted():
    store = InterfaceStore()
    old = pod(1)
    new = InterfaceConfig.container("pod1-new", "cid1-b", "default", "pod1", ["10.244.0.9"],
                                    "02:00:00:00:00:09", ofport=50)
    store.add(old)
    store.add(new)
    assert store.get_pod("default", "pod1") == [old, new]
    store.delete(old.name)
    assert store.get_pod("default", "pod1") == [new]
    assert_consistent(store)


def test_reused_ofport_evicts_stale_holder():
    store = InterfaceStore()
    store.add(pod(1, ofport=7))
    store.add(pod(2, ofport=7))
    assert store.get("pod1-abcd") is None
    assert store.get_by_ofport(7).name == "pod2-abcd"
    assert_consistent(store)


def test_external_ids_round_trip_through_an_ovsdb_row():
    cfg = pod(3)
    ids = cfg.external_ids()
    assert ids == {
        "antrea-type": "container", "container-id": "cid3", "pod-namespace": "default",
        "pod-name": "pod3", "ip-address": "10.244.0.3,fd00::3",
        "attached-mac": "02:00:00:00:00:03",
    }
    row = FakeRow(cfg.name, cfg.ofport, ids, mac_in_use="aa:aa:aa:aa:aa:aa")
    assert InterfaceConfig.from_ovsdb(row) == cfg


def test_rebuild_from_rows_recovers_pods_and_infrastructure_ports():
    pods = [pod(i) for i in range(1, 51)]
    rows = [FakeRow(p.name, p.ofport, p.external_ids()) for p in pods]
    rows += [
        FakeRow("antrea-tun0", 1, {"antrea-type": "tunnel"}, type="geneve",
                mac_in_use="0a:00:00:00:00:01"),
        FakeRow("antrea-gw0", 2, {"antrea-type": "gateway"}, type="internal",
                mac_in_use="02:11:22:33:44:55"),
        FakeRow("br-int", 65534, {}, type="internal"),  # the bridge's own port: not ours
        FakeRow("foreign", 77, {"owner": "someone"}),
        FakeRow("weird", 78, {"antrea-type": "nonsense"}),
    ]
    store = InterfaceStore()
    store.add(pod(99))  # stale content is dropped by a rebuild
    assert store.rebuild(rows) == 52
    assert store.get("pod99-abcd") is None
    assert store.get("br-int") is None and store.get("foreign") is None
    assert store.tunnel() == InterfaceConfig("antrea-tun0", InterfaceType.TUNNEL, 1,
                                             ovs_type="geneve")
    assert store.gateway().mac == "02:11:22:33:44:55"
    assert store.get_by_ofport(2).type is InterfaceType.GATEWAY
    assert store.uplink() is None
    for p in pods:
        assert store.get_container(p.container_id) == p
    assert_consistent(store)


def test_rebuild_keeps_failed_pod_port_for_cni_del_but_not_for_hooks():
    ok = pod(1)
    broken = pod(2)
    rows = [FakeRow(ok.name, ok.ofport, ok.external_ids()),
            FakeRow(broken.name, -1, broken.external_ids())]
    store = InterfaceStore()
    store.rebuild(rows)
    kept = store.get_container("cid2")
    assert kept is not None and kept.ofport is None
    assert [p.container_id for p in store.pod_interfaces()] == ["cid1"]
    assert_consistent(store)


def test_pod_interfaces_are_plugin_context_objects():
    store = InterfaceStore()
    store.add(pod(4))
    store.add(InterfaceConfig("antrea-gw0", InterfaceType.GATEWAY, 2, "02:00:00:00:00:aa"))
    assert store.pod_interfaces() == [PodInterface(
        namespace="default", name="pod4", container_id="cid4", interface_name="pod4-abcd",
        ips=("10.244.0.4", "fd00::4"), mac="02:00:00:00:00:04", ofport=14)]
    with pytest.raises(ValueError, match="antrea-gw0"):
        store.gateway().to_pod_interface()
