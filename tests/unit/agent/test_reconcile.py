"""Restart reconciliation: pods deleted while the agent was down lose port and IP;
the others are not touched."""

from __future__ import annotations

import pytest
from agent_fakes import Rig, cni_request

from antrea_core.agent.reconcile import reconcile_pods

pytestmark = pytest.mark.unit


def attach(rig: Rig, cid: str, name: str) -> None:
    rig.configurator.add(cni_request(cid=cid, name=name))


def test_ports_and_ips_of_deleted_pods_are_released_and_the_rest_untouched(rig: Rig):
    attach(rig, "c1", "web-1")
    attach(rig, "c2", "web-2")
    rig.rec.calls.clear()
    removed = []

    result = reconcile_pods(store=rig.store, ports=rig.ports, veths=rig.veths, ipam=rig.ipam,
                            existing_pods={("default", "web-1")}, on_removed=removed.append)

    assert [p.container_id for p in removed] == ["c2"]
    assert result.kept == 1 and len(result.removed_ports) == 1
    assert [a.container_id for a in result.released] == ["c2"]
    assert set(rig.ipam.allocs) == {("c1", "eth0")}
    assert [p.external_ids["container-id"] for p in rig.ports.ports.values()] == ["c1"]
    assert rig.store.get_container("c1") is not None and rig.store.get_container("c2") is None
    # The surviving pod's veth, port and IP saw no call at all.
    assert [t["container_id"] for t in rig.veths.teardowns] == ["c2"]
    assert rig.rec.calls.count("ports.delete_many") == 1  # one OVSDB transaction


def test_allocation_of_an_existing_pod_without_port_is_kept(rig: Rig):
    # An ADD that crashed after IPAM: kubelet retries (same container id) or sends DEL.
    rig.ipam.allocate("half", "eth0", "default/web-3")
    rig.ipam.allocate("orphan", "eth0", "default/gone")

    result = reconcile_pods(store=rig.store, ports=rig.ports, veths=rig.veths, ipam=rig.ipam,
                            existing_pods={("default", "web-3")})

    assert [a.container_id for a in result.released] == ["orphan"]
    assert ("half", "eth0") in rig.ipam.allocs


def test_nothing_to_do_when_every_pod_still_exists(rig: Rig):
    attach(rig, "c1", "web-1")
    rig.rec.calls.clear()
    result = reconcile_pods(store=rig.store, ports=rig.ports, veths=rig.veths, ipam=rig.ipam,
                            existing_pods={("default", "web-1")})
    assert result.removed_ports == [] and result.released == [] and result.kept == 1
    assert "ports.delete_many" not in rig.rec.calls
