"""Scheduler filtering and choice on plain Node/Pod dicts."""

from __future__ import annotations

from typing import Any

import pytest

from antrea_lab.controllers.scheduler import (
    Unschedulable,
    binding,
    choose_node,
    filter_nodes,
    needs_scheduling,
    pod_counts,
    unschedulable_conditions,
)

pytestmark = pytest.mark.unit


def node(name: str, ready: bool = True, labels: dict | None = None, taints: list | None = None,
         unschedulable: bool = False, max_pods: int | None = None) -> dict:
    status: dict[str, Any] = {"conditions": [{"type": "Ready",
                                              "status": "True" if ready else "False"}]}
    if max_pods is not None:
        status["allocatable"] = {"pods": str(max_pods)}
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": status}


def pod(name: str = "p", **spec: Any) -> dict:
    return {"metadata": {"name": name, "namespace": "ns1", "uid": f"uid-{name}"},
            "spec": {"containers": [{"name": "c"}], **spec}, "status": {"phase": "Pending"}}


def names(nodes: list[dict]) -> list[str]:
    return [n["metadata"]["name"] for n in nodes]


def test_picks_ready_node_with_fewest_pods() -> None:
    nodes = [node("n1"), node("n2"), node("n3", ready=False)]
    assert choose_node(pod(), nodes, {"n1": 3, "n2": 1}) == "n2"
    assert choose_node(pod(), nodes, {}) == "n1"  # ties broken by name


def test_unschedulable_and_not_ready_nodes_are_filtered() -> None:
    nodes = [node("cordoned", unschedulable=True), node("down", ready=False), node("ok")]
    ok, why = filter_nodes(pod(), nodes, {})
    assert names(ok) == ["ok"]
    assert why == {"node(s) were unschedulable": 1, "node(s) were not ready": 1}


def test_noschedule_taint_needs_toleration() -> None:
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    nodes = [node("tainted", taints=[taint])]
    with pytest.raises(Unschedulable, match="untolerated taint"):
        choose_node(pod(), nodes, {})
    equal = pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu",
                              "effect": "NoSchedule"}])
    assert choose_node(equal, nodes, {}) == "tainted"
    exists = pod(tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert choose_node(exists, nodes, {}) == "tainted"
    wrong_value = pod(tolerations=[{"key": "dedicated", "value": "cpu",
                                    "effect": "NoSchedule"}])
    with pytest.raises(Unschedulable):
        choose_node(wrong_value, nodes, {})


def test_prefer_no_schedule_taint_does_not_filter() -> None:
    nodes = [node("soft", taints=[{"key": "k", "effect": "PreferNoSchedule"}])]
    assert choose_node(pod(), nodes, {}) == "soft"


def test_node_selector_must_match_labels() -> None:
    nodes = [node("a", labels={"disk": "ssd"}), node("b", labels={"disk": "hdd"})]
    assert choose_node(pod(nodeSelector={"disk": "hdd"}), nodes, {"b": 10}) == "b"
    with pytest.raises(Unschedulable, match="2 node\\(s\\) didn't match"):
        choose_node(pod(nodeSelector={"disk": "nvme"}), nodes, {})


def affinity(*terms: dict) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                             {"nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize(("expr", "expected"), [
    ({"key": "zone", "operator": "In", "values": ["z1", "z3"]}, ["a"]),
    ({"key": "zone", "operator": "NotIn", "values": ["z1"]}, ["b", "c"]),
    ({"key": "zone", "operator": "Exists"}, ["a", "b"]),
    ({"key": "zone", "operator": "DoesNotExist"}, ["c"]),
])
def test_required_node_affinity_match_expressions(expr: dict, expected: list[str]) -> None:
    nodes = [node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"}), node("c")]
    ok, _ = filter_nodes(pod(affinity=affinity({"matchExpressions": [expr]})), nodes, {})
    assert names(ok) == expected


def test_required_node_affinity_match_fields_and_or_terms() -> None:
    nodes = [node("a", labels={"zone": "z1"}), node("b"), node("c")]
    p = pod(affinity=affinity(
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]},
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}))
    ok, _ = filter_nodes(p, nodes, {})
    assert names(ok) == ["a", "c"]


def test_full_node_is_skipped() -> None:
    nodes = [node("small", max_pods=2), node("big", max_pods=110)]
    assert choose_node(pod(), nodes, {"small": 2, "big": 50}) == "big"


def test_unschedulable_message_counts_reasons() -> None:
    with pytest.raises(Unschedulable) as info:
        choose_node(pod(), [node("x", ready=False), node("y", unschedulable=True)], {})
    assert info.value.message == ("0/2 nodes are available: 1 node(s) were not ready, "
                                  "1 node(s) were unschedulable.")
    with pytest.raises(Unschedulable, match=r"^0/0 nodes are available\.$"):
        choose_node(pod(), [], {})


def test_needs_scheduling_only_for_unbound_default_scheduler_pods() -> None:
    assert needs_scheduling(pod())
    assert not needs_scheduling(pod(nodeName="n1"))
    assert not needs_scheduling(pod(schedulerName="other"))
    deleting = pod()
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert not needs_scheduling(deleting)


def test_pod_counts_ignore_finished_pods() -> None:
    running = pod("a", nodeName="n1")
    done = pod("b", nodeName="n1")
    done["status"]["phase"] = "Succeeded"
    assert pod_counts([running, done, pod("c")]) == {"n1": 1}


def test_binding_targets_node() -> None:
    b = binding(pod("p1"), "n2")
    assert b["kind"] == "Binding"
    assert b["metadata"]["name"] == "p1"
    assert b["target"] == {"apiVersion": "v1", "kind": "Node", "name": "n2"}


def test_unschedulable_condition_replaces_and_is_idempotent() -> None:
    p = pod()
    p["status"]["conditions"] = [{"type": "PodScheduled", "status": "Unknown"},
                                 {"type": "Other", "status": "True"}]
    conds = unschedulable_conditions(p, "0/1 nodes are available.")
    assert conds is not None
    sched = [c for c in conds if c["type"] == "PodScheduled"]
    assert len(sched) == 1
    assert (sched[0]["status"], sched[0]["reason"]) == ("False", "Unschedulable")
    assert any(c["type"] == "Other" for c in conds)
    p["status"]["conditions"] = conds
    assert unschedulable_conditions(p, "0/1 nodes are available.") is None
    assert unschedulable_conditions(p, "0/2 nodes are available.") is not None
