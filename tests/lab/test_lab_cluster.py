"""The lab as a user meets it: nodes, kubectl, the client's watch, pods that talk."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from kubernetes import client, watch

from antrea_lab import probe

pytestmark = pytest.mark.lab


def _wait(predicate, timeout: float = 60.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def _namespace(lab, name: str) -> str:
    manifest = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"
    lab.kubectl("apply", "-f", "-", stdin=manifest)
    return name


def _pod(name: str, node: str | None = None, labels: dict | None = None) -> dict:
    spec: dict = {"containers": [{"name": "echo", "image": "antrea-lab/echo", "ports": [
        {"containerPort": 80, "protocol": "TCP"}, {"containerPort": 80, "protocol": "UDP"}]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": name}}, "spec": spec}


def _running_pods(lab, namespace: str, count: int):
    api = client.CoreV1Api(lab.api)

    def ready():
        pods = [p for p in api.list_namespaced_pod(namespace).items
                if p.status.phase == "Running" and p.status.pod_ip]
        return pods if len(pods) >= count else None
    return _wait(ready, timeout=90)


def test_nodes_are_ready_with_distinct_pod_cidrs(lab):
    nodes = client.CoreV1Api(lab.api).list_node().items
    assert sorted(n.metadata.name for n in nodes) == ["node1", "node2"]
    cidrs = [n.spec.pod_cidr for n in nodes]
    assert all(cidrs) and len(set(cidrs)) == 2
    for node in nodes:
        conditions = {c.type: c.status for c in node.status.conditions}
        assert conditions["Ready"] == "True"
        addresses = {a.type: a.address for a in node.status.addresses}
        assert addresses["InternalIP"].startswith("192.168.77.")


def test_kubectl_apply_get_wide_label_and_delete(lab):
    ns = _namespace(lab, "kubectl-e2e")
    pod = _pod("web", node="node1")
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "deny-ingress"},
              "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                       "policyTypes": ["Ingress"]}}
    manifest = yaml.safe_dump_all([pod, policy])
    out = lab.kubectl("apply", "-n", ns, "-f", "-", stdin=manifest).stdout
    assert "pod/web created" in out
    assert "networkpolicy.networking.k8s.io/deny-ingress created" in out
    policy["spec"]["policyTypes"] = ["Ingress", "Egress"]
    out = lab.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump_all([pod, policy])).stdout
    assert "networkpolicy.networking.k8s.io/deny-ingress configured" in out
    assert "pod/web unchanged" in out
    stored = client.NetworkingV1Api(lab.api).read_namespaced_network_policy("deny-ingress", ns)
    assert stored.spec.policy_types == ["Ingress", "Egress"]

    running = _running_pods(lab, ns, 1)[0]
    wide = lab.kubectl("get", "pods", "-n", ns, "-o", "wide").stdout.splitlines()
    header = wide[0].split()
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                      "NOMINATED", "NODE", "READINESS", "GATES"]
    row = dict(zip(header[:7], wide[1].split(), strict=False))
    assert row["NAME"] == "web" and row["STATUS"] == "Running" and row["READY"] == "1/1"
    assert row["IP"] == running.status.pod_ip and row["NODE"] == "node1"

    lab.kubectl("label", "-n", ns, "pod", "web", "tier=frontend")
    names = lab.kubectl("get", "pods", "-n", ns, "-l", "tier=frontend", "-o", "name").stdout
    assert names.split() == ["pod/web"]
    assert lab.kubectl("get", "pods", "-n", ns, "-l", "tier=backend", "-o",
                       "name").stdout.split() == []

    lab.kubectl("delete", "-n", ns, "pod", "web", "--timeout=60s")
    remaining = lab.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split()
    assert remaining == []
    lab.kubectl("delete", "-n", ns, "networkpolicy", "deny-ingress")


def test_client_watch_sees_added_modified_deleted(lab):
    ns = _namespace(lab, "watch-e2e")
    api = client.CoreV1Api(lab.api)
    rv = api.list_namespaced_config_map(ns).metadata.resource_version
    events: list[tuple[str, str]] = []
    w = watch.Watch()

    def consume():
        for event in w.stream(api.list_namespaced_config_map, ns, resource_version=rv,
                              timeout_seconds=30):
            obj = event["object"]
            if obj.metadata.name != "kube-root-ca.crt":
                events.append((event["type"], obj.data.get("v") if obj.data else None))
            if event["type"] == "DELETED" and obj.metadata.name == "cm":
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"), data={"v": "1"})
    api.create_namespaced_config_map(ns, body)
    api.patch_namespaced_config_map("cm", ns, {"data": {"v": "2"}})
    api.delete_namespaced_config_map("cm", ns)
    thread.join(timeout=30)
    assert events == [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]


def test_pods_on_one_node_reach_each_other_over_tcp_and_udp(lab):
    ns = _namespace(lab, "same-node")
    api = client.CoreV1Api(lab.api)
    for name in ("a", "b", "c"):
        api.create_namespaced_pod(ns, _pod(name, node="node1"))
    pods = _running_pods(lab, ns, 3)
    endpoints = probe.pod_endpoints(lab.dir, pods)
    for proto in ("tcp", "udp"):
        matrix = probe.probe_matrix(endpoints, proto=proto, port=80)
        assert matrix.all_reachable(), matrix.render() + f"\n{matrix.errors}"
    # A port nobody listens on is not reachable: the matrix can say no.
    closed = probe.probe_matrix(endpoints, proto="tcp", port=81, timeout=0.5)
    assert not any(any(row.values()) for row in closed.reachable.values())


def test_antrea_lab_probe_and_exec_commands(lab):
    ns = _namespace(lab, "cli-e2e")
    api = client.CoreV1Api(lab.api)
    for name in ("x", "y"):
        api.create_namespaced_pod(ns, _pod(name, node="node2"))
    pods = {p.metadata.name: p for p in _running_pods(lab, ns, 2)}
    out = lab.antrea_lab("probe", "-n", ns, "--proto", "udp")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == [f"{ns}/x", f"{ns}/y"]
    assert all(r[1:3] == [".", "."] for r in rows)
    shown = lab.antrea_lab("exec", f"{ns}/x", "--", "ip", "-o", "-4", "addr", "show", "eth0")
    assert shown.returncode == 0, shown.stderr
    assert pods["x"].status.pod_ip in shown.stdout


def test_pods_across_nodes_reach_each_other_in_bridge_mode(lab):
    ns = _namespace(lab, "cross-node")
    api = client.CoreV1Api(lab.api)
    api.create_namespaced_pod(ns, _pod("n1", node="node1"))
    api.create_namespaced_pod(ns, _pod("n2", node="node2"))
    pods = _running_pods(lab, ns, 2)
    assert {p.spec.node_name for p in pods} == {"node1", "node2"}
    matrix = probe.probe_matrix(probe.pod_endpoints(lab.dir, pods), proto="tcp", port=80)
    assert matrix.all_reachable(), matrix.render()
