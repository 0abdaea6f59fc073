"""EndpointSlice / Endpoints computation from plain Service, Pod and Node dicts."""

from __future__ import annotations

from typing import Any

import pytest

from antrea_lab.controllers.endpointslices import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    WriteTracker,
    desired_endpoints,
    desired_slices,
    plan_slices,
    resolve_ports,
    rv_reached,
    slice_object,
)

pytestmark = pytest.mark.unit


def service(name: str = "web", selector: dict | None = None, ports: list | None = None,
            **spec: Any) -> dict:
    return {"metadata": {"name": name, "namespace": "ns1", "uid": f"uid-{name}",
                         "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "web"} if selector is None else selector,
                     "ports": ports if ports is not None else
                     [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                     "ipFamilies": ["IPv4"], **spec}}


def pod(name: str, ip: str | list[str] | None, ready: bool = True, node: str = "node1",
        labels: dict | None = None, deleting: bool = False, ports: list | None = None,
        phase: str = "Running", ns: str = "ns1", restart: str = "Always") -> dict:
    ips = [ip] if isinstance(ip, str) else (ip or [])
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{name}",
                            "labels": {"app": "web"} if labels is None else labels}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": i} for i in ips]
    return {"metadata": meta, "status": status,
            "spec": {"nodeName": node, "restartPolicy": restart,
                     "containers": [{"name": "c", "ports": ports or []}]}}


NODES = {"node1": {"metadata": {"name": "node1",
                                "labels": {"topology.kubernetes.io/zone": "z1"}}},
         "node2": {"metadata": {"name": "node2", "labels": {}}}}


def endpoints_by_pod(slices: list[dict]) -> dict[str, dict]:
    return {e["targetRef"]["name"]: e for s in slices for e in s["endpoints"]}


def test_ready_pod_gets_ready_endpoint_with_node_zone_and_ports() -> None:
    slices = desired_slices(service(), [pod("a", "10.244.0.5")], NODES)
    assert len(slices) == 1
    s = slices[0]
    assert s["addressType"] == "IPv4"
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert s["endpoints"] == [{
        "addresses": ["10.244.0.5"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": "ns1", "name": "a", "uid": "uid-a"},
        "nodeName": "node1", "zone": "z1"}]


def test_not_ready_and_terminating_conditions() -> None:
    pods = [pod("notready", "10.244.0.6", ready=False, node="node2"),
            pod("term", "10.244.0.7", ready=True, deleting=True),
            pod("noip", None)]
    eps = endpoints_by_pod(desired_slices(service(), pods, NODES))
    assert set(eps) == {"notready", "term"}
    assert eps["notready"]["conditions"] == {"ready": False, "serving": False,
                                             "terminating": False}
    assert "zone" not in eps["notready"]
    assert eps["term"]["conditions"] == {"ready": False, "serving": True, "terminating": True}


def test_publish_not_ready_addresses_marks_everything_ready() -> None:
    svc = service(publishNotReadyAddresses=True)
    pods = [pod("nr", "10.244.0.6", ready=False), pod("term", "10.244.0.7", deleting=True)]
    eps = endpoints_by_pod(desired_slices(svc, pods, NODES))
    assert eps["nr"]["conditions"]["ready"] is True
    assert eps["nr"]["conditions"]["serving"] is False
    assert eps["term"]["conditions"]["ready"] is True
    legacy = desired_endpoints(svc, pods)
    assert [a["ip"] for a in legacy["subsets"][0]["addresses"]] == ["10.244.0.6", "10.244.0.7"]


def test_selector_limits_to_matching_pods_in_namespace() -> None:
    pods = [pod("yes", "10.244.0.5"), pod("other-label", "10.244.0.6", labels={"app": "db"}),
            pod("other-ns", "10.244.0.7", ns="ns2")]
    assert set(endpoints_by_pod(desired_slices(service(), pods, NODES))) == {"yes"}
    moved = service(selector={"app": "db"})
    assert set(endpoints_by_pod(desired_slices(moved, pods, NODES))) == {"other-label"}


def test_finished_pods_are_dropped_by_restart_policy() -> None:
    pods = [pod("done", "10.244.0.5", phase="Succeeded", restart="Never"),
            pod("failed-onfailure", "10.244.0.6", phase="Failed", restart="OnFailure")]
    assert set(endpoints_by_pod(desired_slices(service(), pods, NODES))) == \
        {"failed-onfailure"}


def test_named_target_port_resolves_per_pod_and_splits_slices() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                         {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}])
    p1 = pod("p1", "10.244.0.5", ports=[{"name": "web", "containerPort": 8080}])
    p2 = pod("p2", "10.244.0.6", ports=[{"name": "web", "containerPort": 9090}])
    p3 = pod("p3", "10.244.0.7")  # no port named "web"
    p4 = pod("p4", "10.244.0.8", ports=[{"name": "web", "containerPort": 8080,
                                         "protocol": "UDP"}])  # wrong protocol
    assert resolve_ports(svc, p1) == (("dns", 5353, "UDP", ""), ("http", 8080, "TCP", ""))
    slices = desired_slices(svc, [p1, p2, p3, p4], NODES)
    by_ports = {tuple((p["name"], p["port"]) for p in s["ports"]):
                sorted(e["targetRef"]["name"] for e in s["endpoints"]) for s in slices}
    assert by_ports == {(("dns", 5353), ("http", 8080)): ["p1"],
                        (("dns", 5353), ("http", 9090)): ["p2"],
                        (("dns", 5353),): ["p3", "p4"]}


def test_target_port_defaults_to_port() -> None:
    svc = service(ports=[{"port": 80, "protocol": "TCP"}])
    assert resolve_ports(svc, pod("a", "10.0.0.1")) == (("", 80, "TCP", ""),)


def test_dual_stack_service_gets_a_slice_per_family() -> None:
    svc = service(ipFamilies=["IPv4", "IPv6"])
    pods = [pod("a", ["10.244.0.5", "fd00:10:244::5"]), pod("v4only", "10.244.0.6")]
    slices = desired_slices(svc, pods, NODES)
    assert {s["addressType"]: len(s["endpoints"]) for s in slices} == {"IPv4": 2, "IPv6": 1}
    v6 = next(s for s in slices if s["addressType"] == "IPv6")
    assert v6["endpoints"][0]["addresses"] == ["fd00:10:244::5"]


def test_slices_hold_at_most_max_endpoints() -> None:
    pods = [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}") for i in range(250)]
    slices = desired_slices(service(), pods, NODES)
    assert [len(s["endpoints"]) for s in slices] == [100, 100, 50]
    assert len(endpoints_by_pod(slices)) == 250


def test_service_without_matching_pods_keeps_one_empty_slice() -> None:
    slices = desired_slices(service(), [], NODES)
    assert slices == [{"addressType": "IPv4", "ports": [], "endpoints": []}]


def test_slice_object_has_labels_owner_and_generate_name() -> None:
    svc = service()
    obj = slice_object(svc, desired_slices(svc, [pod("a", "10.244.0.5")], NODES)[0])
    assert obj["metadata"]["generateName"] == "web-"
    assert obj["metadata"]["labels"] == {"tier": "front", SERVICE_NAME_LABEL: "web",
                                         MANAGED_BY_LABEL: MANAGED_BY}
    owner = obj["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
        ("Service", "web", "uid-web", True)


def _existing(svc: dict, body: dict, name: str) -> dict:
    obj = slice_object(svc, body)
    obj["metadata"].pop("generateName")
    obj["metadata"]["name"] = name
    obj["metadata"]["resourceVersion"] = "7"
    return obj


def test_plan_is_empty_when_existing_slices_match() -> None:
    svc = service()
    desired = desired_slices(svc, [pod("a", "10.244.0.5")], NODES)
    existing = [_existing(svc, desired[0], "web-abc")]
    assert plan_slices(svc, desired, existing) == ([], [], [])


def test_plan_updates_in_place_and_deletes_extra_slices() -> None:
    svc = service()
    old = desired_slices(svc, [pod("a", "10.244.0.5")], NODES)[0]
    existing = [_existing(svc, old, "web-1"), _existing(svc, old, "web-2")]
    desired = desired_slices(svc, [pod("a", "10.244.0.5"), pod("b", "10.244.0.9")], NODES)
    creates, updates, deletes = plan_slices(svc, desired, existing)
    assert creates == []
    assert [u["metadata"]["name"] for u in updates] == ["web-1"]
    assert len(updates[0]["endpoints"]) == 2
    assert updates[0]["metadata"]["resourceVersion"] == "7"
    assert [d["metadata"]["name"] for d in deletes] == ["web-2"]


def test_plan_rewrites_slice_of_old_port_group_instead_of_recreating() -> None:
    svc = service()
    old = desired_slices(svc, [pod("a", "10.244.0.5")], NODES)[0]
    svc2 = service(ports=[{"name": "https", "port": 443, "protocol": "TCP"}])
    desired = desired_slices(svc2, [pod("a", "10.244.0.5")], NODES)
    creates, updates, deletes = plan_slices(svc2, desired, [_existing(svc, old, "web-1")])
    assert creates == [] and deletes == []
    assert [u["metadata"]["name"] for u in updates] == ["web-1"]
    assert updates[0]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP"}]


def test_plan_creates_slice_for_new_address_family() -> None:
    svc = service()
    old = desired_slices(svc, [pod("a", "10.244.0.5")], NODES)[0]
    dual = service(ipFamilies=["IPv4", "IPv6"])
    desired = desired_slices(dual, [pod("a", ["10.244.0.5", "fd00::5"])], NODES)
    creates, updates, deletes = plan_slices(dual, desired, [_existing(svc, old, "web-1")])
    assert [c["addressType"] for c in creates] == ["IPv6"]
    assert creates[0]["metadata"]["generateName"] == "web-"
    assert updates == [] and deletes == []


def test_legacy_endpoints_split_ready_and_not_ready() -> None:
    pods = [pod("b", "10.244.0.9"), pod("a", "10.244.0.5"),
            pod("nr", "10.244.0.6", ready=False), pod("term", "10.244.0.7", deleting=True)]
    ep = desired_endpoints(service(), pods)
    assert ep["metadata"] == {"name": "web", "namespace": "ns1", "labels": {"tier": "front"}}
    [subset] = ep["subsets"]
    assert [a["ip"] for a in subset["addresses"]] == ["10.244.0.5", "10.244.0.9"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.244.0.6"]
    assert subset["addresses"][0]["targetRef"]["name"] == "a"
    assert subset["addresses"][0]["nodeName"] == "node1"
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_legacy_endpoints_empty_without_pods() -> None:
    assert desired_endpoints(service(), [])["subsets"] == []


def test_write_tracker_waits_until_cache_shows_our_writes() -> None:
    cache: dict[str, dict] = {}
    tracker = WriteTracker(expiry=60)
    tracker.expect("ns1/web", "web-a", "12")
    tracker.expect("ns1/web", "web-old", None)
    cache["web-old"] = {"metadata": {"resourceVersion": "3"}}
    assert tracker.waiting("ns1/web", cache.get)          # create not seen yet
    cache["web-a"] = {"metadata": {"resourceVersion": "12"}}
    assert tracker.waiting("ns1/web", cache.get)          # deletion not seen yet
    del cache["web-old"]
    assert not tracker.waiting("ns1/web", cache.get)
    assert not tracker.waiting("ns1/other", cache.get)


def test_write_tracker_gives_up_after_expiry() -> None:
    tracker = WriteTracker(expiry=0)
    tracker.expect("ns1/web", "web-a", "12")
    assert not tracker.waiting("ns1/web", lambda name: None)


def test_rv_reached_compares_numerically_when_possible() -> None:
    assert rv_reached("12", "12") and rv_reached("100", "99")
    assert not rv_reached("99", "100") and not rv_reached(None, "1")
    assert not rv_reached("abc", "abd")
