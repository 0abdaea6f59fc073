"""meta.k8s.io/v1 Tables for kubectl get."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from antrea_lab.apiserver.registry import BUILTIN, ResourceInfo
from antrea_lab.apiserver.tables import format_label_selector, human_duration, jsonpath, table_for

pytestmark = pytest.mark.unit

NOW = dt.datetime(2025, 1, 10, 12, 0, 0, tzinfo=dt.UTC)
# Core kinds win where another group reuses the kind name (events.k8s.io Event).
INFOS = {i.kind: i for i in BUILTIN}
INFOS.update({i.kind: i for i in BUILTIN if i.group == ""})


def _ts(seconds_ago: int) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _names(table: dict[str, Any], wide: bool = True) -> list[str]:
    return [c["name"].upper() for c in table["columnDefinitions"]
            if wide or c["priority"] == 0]


@pytest.mark.parametrize(("seconds", "text"), [
    (5, "5s"), (119, "119s"), (182, "3m2s"), (300, "5m"), (900, "15m"), (4 * 3600, "4h"),
    (4 * 3600 + 600, "4h10m"), (20 * 3600, "20h"), (2 * 86400 + 3 * 3600, "2d3h"),
    (40 * 86400, "40d"), (3 * 365 * 86400 + 2 * 86400, "3y2d"), (-5, "<invalid>"),
])
def test_human_duration_matches_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def _pod(**status: Any) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": _ts(65)},
            "spec": {"nodeName": "node1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": status}


def test_pod_columns_and_running_row() -> None:
    pod = _pod(phase="Running", podIP="10.244.1.5", containerStatuses=[
        {"name": "a", "ready": True, "restartCount": 1, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": _ts(30)}}},
        {"name": "b", "ready": True, "restartCount": 0, "state": {"running": {}}}])
    table = table_for(INFOS["Pod"], [pod], now=NOW)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert _names(table, wide=False) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert _names(table)[5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert table["rows"][0]["cells"] == ["web", "2/2", "Running", "1 (30s ago)", "65s",
                                         "10.244.1.5", "node1", "<none>", "<none>"]
    obj = table["rows"][0]["object"]
    assert obj == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": pod["metadata"]}


def test_pod_status_reasons() -> None:
    waiting = _pod(phase="Pending", containerStatuses=[
        {"name": "a", "ready": False, "restartCount": 0,
         "state": {"waiting": {"reason": "ContainerCreating"}}}])
    cells = table_for(INFOS["Pod"], [waiting], now=NOW)["rows"][0]["cells"]
    assert cells[1:4] == ["0/2", "ContainerCreating", 0]
    assert cells[5] == "<none>"
    deleting = _pod(phase="Running")
    deleting["metadata"]["deletionTimestamp"] = _ts(1)
    assert table_for(INFOS["Pod"], [deleting], now=NOW)["rows"][0]["cells"][2] == "Terminating"
    crashed = _pod(phase="Running", containerStatuses=[
        {"name": "a", "restartCount": 3, "state": {"terminated": {"exitCode": 2}}}])
    assert table_for(INFOS["Pod"], [crashed], now=NOW)["rows"][0]["cells"][2] == "ExitCode:2"
    init = _pod(phase="Pending", initContainerStatuses=[
        {"name": "i", "restartCount": 0, "state": {"running": {}}}])
    init["spec"]["initContainers"] = [{"name": "i"}]
    assert table_for(INFOS["Pod"], [init], now=NOW)["rows"][0]["cells"][2] == "Init:0/1"


def test_node_row() -> None:
    node = {"metadata": {"name": "node1", "creationTimestamp": _ts(7200),
                         "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.77.11"}],
                       "nodeInfo": {"kubeletVersion": "v1.37.0-lab", "osImage": "Debian",
                                    "kernelVersion": "6.1", "containerRuntimeVersion": "lab"}}}
    table = table_for(INFOS["Node"], [node], now=NOW)
    assert _names(table) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                             "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert table["rows"][0]["cells"] == ["node1", "Ready,SchedulingDisabled", "control-plane",
                                         "120m", "v1.37.0-lab", "192.168.77.11", "<none>",
                                         "Debian", "6.1", "lab"]


def test_service_rows() -> None:
    svc = {"metadata": {"name": "web", "creationTimestamp": _ts(10)},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "selector": {"b": "2", "a": "1"},
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                              {"port": 53, "protocol": "UDP"}]}}
    lb = {"metadata": {"name": "lb", "creationTimestamp": _ts(10)},
          "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.21", "ports": []}}
    table = table_for(INFOS["Service"], [svc, lb], now=NOW)
    assert _names(table) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                             "SELECTOR"]
    assert table["rows"][0]["cells"] == ["web", "NodePort", "10.96.0.20", "<none>",
                                         "80:30080/TCP,53/UDP", "10s", "a=1,b=2"]
    assert table["rows"][1]["cells"][3:5] == ["<pending>", "<none>"]


def test_endpoints_slices_and_netpol() -> None:
    ep = {"metadata": {"name": "web", "creationTimestamp": _ts(1)},
          "subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)],
                       "ports": [{"port": 80}]}]}
    cells = table_for(INFOS["Endpoints"], [ep], now=NOW)["rows"][0]["cells"]
    assert cells[1] == "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."
    es = {"metadata": {"name": "web-abc", "creationTimestamp": _ts(1)}, "addressType": "IPv4",
          "ports": [{"port": 80}], "endpoints": [{"addresses": ["10.0.0.1"]}]}
    table = table_for(INFOS["EndpointSlice"], [es], now=NOW)
    assert _names(table) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert table["rows"][0]["cells"] == ["web-abc", "IPv4", "80", "10.0.0.1", "1s"]
    np = {"metadata": {"name": "deny", "creationTimestamp": _ts(1)},
          "spec": {"podSelector": {"matchLabels": {"app": "web"}, "matchExpressions": [
              {"key": "tier", "operator": "In", "values": ["b", "a"]}]}}}
    assert table_for(INFOS["NetworkPolicy"], [np], now=NOW)["rows"][0]["cells"][1] == \
        "app=web,tier in (a,b)"
    assert format_label_selector({}) == "<none>"


def test_counts_are_integers() -> None:
    cm = {"metadata": {"name": "c", "creationTimestamp": _ts(1)}, "data": {"a": "1", "b": "2"}}
    assert table_for(INFOS["ConfigMap"], [cm], now=NOW)["rows"][0]["cells"] == ["c", 2, "1s"]
    sec = {"metadata": {"name": "s", "creationTimestamp": _ts(1)}, "type": "Opaque",
           "data": {"a": "MQ=="}}
    assert table_for(INFOS["Secret"], [sec], now=NOW)["rows"][0]["cells"] == \
        ["s", "Opaque", 1, "1s"]
    sa = {"metadata": {"name": "default", "creationTimestamp": _ts(1)}}
    assert table_for(INFOS["ServiceAccount"], [sa], now=NOW)["rows"][0]["cells"][1] == 0


def test_event_and_crd_and_default_tables() -> None:
    ev = {"metadata": {"name": "web.1", "creationTimestamp": _ts(30)}, "type": "Normal",
          "reason": "Scheduled", "message": "assigned", "lastTimestamp": _ts(20),
          "involvedObject": {"kind": "Pod", "name": "web"}}
    table = table_for(INFOS["Event"], [ev], now=NOW)
    assert _names(table, wide=False) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [c for c, d in zip(table["rows"][0]["cells"], table["columnDefinitions"],
                              strict=True) if d["priority"] == 0] == \
        ["20s", "Normal", "Scheduled", "pod/web", "assigned"]
    crd = {"metadata": {"name": "a.b.c", "creationTimestamp": "2025-01-01T00:00:00Z"}}
    t = table_for(INFOS["CustomResourceDefinition"], [crd], now=NOW)
    assert _names(t) == ["NAME", "CREATED AT"]
    assert t["rows"][0]["cells"] == ["a.b.c", "2025-01-01T00:00:00Z"]
    role = {"metadata": {"name": "r", "creationTimestamp": _ts(3)}}
    lease = {"metadata": {"name": "l", "creationTimestamp": _ts(3)},
             "spec": {"holderIdentity": "ctrl-1"}}
    assert table_for(INFOS["Lease"], [lease], now=NOW)["rows"][0]["cells"] == ["l", "ctrl-1", "3s"]
    other = ResourceInfo("example.io", "v1", "things", "Thing", True)
    t = table_for(other, [role], now=NOW)
    assert _names(t) == ["NAME", "AGE"] and t["rows"][0]["cells"] == ["r", "3s"]


def test_include_object_modes() -> None:
    cm = {"metadata": {"name": "c", "creationTimestamp": _ts(1)}}
    assert "object" not in table_for(INFOS["ConfigMap"], [cm], "None", now=NOW)["rows"][0]
    assert table_for(INFOS["ConfigMap"], [cm], "Object", now=NOW)["rows"][0]["object"] is cm


def test_custom_resource_printer_columns() -> None:
    info = ResourceInfo("crd.antrea.io", "v1beta1", "clustergroups", "ClusterGroup", False,
                        builtin=False, printer_columns=(
                            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                            {"name": "First-Port", "type": "integer",
                             "jsonPath": ".spec.ports[0].port", "priority": 1},
                            {"name": "Names", "type": "string", "jsonPath": ".spec.ports[*].name"},
                            {"name": "Missing", "type": "string", "jsonPath": ".status.nope"},
                            {"name": "Age", "type": "date",
                             "jsonPath": ".metadata.creationTimestamp"}))
    obj = {"metadata": {"name": "g", "creationTimestamp": _ts(200)},
           "spec": {"replicas": 3, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}
    table = table_for(info, [obj], now=NOW)
    assert _names(table) == ["NAME", "REPLICAS", "FIRST-PORT", "NAMES", "MISSING", "AGE"]
    assert table["columnDefinitions"][2]["priority"] == 1
    assert table["rows"][0]["cells"] == ["g", 3, 80, "a,b", None, "3m20s"]
    plain = ResourceInfo("x.io", "v1", "foos", "Foo", True, builtin=False)
    t = table_for(plain, [obj], now=NOW)
    assert _names(t) == ["NAME", "AGE"] and t["rows"][0]["cells"] == ["g", "3m20s"]


def test_jsonpath_subset() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": 2}], "x.y": "dot"}}
    assert jsonpath(doc, ".a.b[1].c") == [2]
    assert jsonpath(doc, "{.a.b[*].c}") == [1, 2]
    assert jsonpath(doc, ".a['x.y']") == ["dot"]
    assert jsonpath(doc, ".a.nope") == []
    assert jsonpath(doc, ".a.b[5].c") == []
