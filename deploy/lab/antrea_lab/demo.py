"""The lab's demo: apply demo pods with kubectl, wait until they run, print the matrix;
with antrea-agent networking the pods, then apply a NetworkPolicy and show it enforced,
and an Egress and show which source IP the outside world sees from each pod."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib import resources

from antrea_lab import cluster, probe
from antrea_lab.labdir import LabDir, LabError

NAMESPACE = "demo"


def manifest_path(name: str = "demo.yaml") -> str:
    return str(resources.files("antrea_lab") / "manifests" / name)


def wait_running(lab: LabDir, namespace: str, count: int, timeout: float = 90.0) -> list:
    from kubernetes import client

    api = client.CoreV1Api(cluster.kube_client(lab))
    deadline = time.monotonic() + timeout
    pods: list = []
    while time.monotonic() < deadline:
        pods = api.list_namespaced_pod(namespace).items
        running = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip]
        if len(running) >= count:
            return running
        time.sleep(0.3)
    states = ", ".join(f"{p.metadata.name}={p.status.phase}" for p in pods)
    raise LabError(f"demo pods not running after {timeout:.0f}s: {states}")


def run(lab: LabDir, progress: cluster.Progress = print, policy: bool = False
        ) -> probe.Matrix:
    from antrea_lab.cli import kubectl_path

    progress("demo: kubectl apply -f " + manifest_path())
    subprocess.run([kubectl_path(), "--kubeconfig", str(lab.kubeconfig), "apply", "-f",
                    manifest_path()], check=True)
    pods = wait_running(lab, NAMESPACE, 4)
    subprocess.run([kubectl_path(), "--kubeconfig", str(lab.kubeconfig), "get", "pods", "-n",
                    NAMESPACE, "-o", "wide"], check=False)
    matrix = probe.probe_matrix(probe.pod_endpoints(lab, pods), proto="tcp", port=80,
                                timeout=2)
    progress("\nconnectivity matrix ('.' = reachable, 'X' = not):")
    progress(matrix.render())
    if policy:
        matrix = _policy_act(lab, pods, progress)
        _egress_act(lab, pods, progress)
    return matrix


def _policy_act(lab: LabDir, pods: list, progress: cluster.Progress) -> probe.Matrix:
    """Apply demo-policy.yaml and print the matrix once web-a admits only web-d."""
    from antrea_lab.cli import kubectl_path

    path = manifest_path("demo-policy.yaml")
    progress("\ndemo: kubectl apply -f " + path)
    subprocess.run([kubectl_path(), "--kubeconfig", str(lab.kubeconfig), "apply", "-f", path],
                   check=True)
    endpoints = probe.pod_endpoints(lab, pods)
    target, allowed = f"{NAMESPACE}/web-a", f"{NAMESPACE}/web-d"
    # Enforced once web-a refuses every other pod except web-d (a pod reaching itself
    # never leaves its netns).
    expected = {e.key: e.key in (target, allowed) for e in endpoints}
    deadline = time.monotonic() + 20
    while True:
        matrix = probe.probe_matrix(endpoints, proto="tcp", port=80, timeout=1)
        seen = {src: matrix.reachable[src][target] for src in expected}
        if seen == expected or time.monotonic() > deadline:
            break
    progress("connectivity matrix with the policy (web-a admits only web-d):")
    progress(matrix.render())
    return matrix


EXTERNAL_PORT = 8080


def _egress_act(lab: LabDir, pods: list, progress: cluster.Progress) -> dict[str, str]:
    """Apply demo-egress.yaml; print the source IP the external netns sees per pod."""
    from antrea_lab.cli import kubectl_path
    from antrea_lab.node.topology import EXTERNAL_IP

    path = manifest_path("demo-egress.yaml")
    progress("\ndemo: kubectl apply -f " + path)
    subprocess.run([kubectl_path(), "--kubeconfig", str(lab.kubeconfig), "apply", "-f", path],
                   check=True)
    # The outside world for a moment: a server answering with the source IP it sees.
    server = subprocess.Popen(["ip", "netns", "exec", lab.netns("external"), sys.executable,
                               "-m", "antrea_lab.workload", "serve", "--tcp",
                               str(EXTERNAL_PORT), "--name", "@peer"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        json.loads(server.stdout.readline() or "{}")
        endpoints = probe.pod_endpoints(lab, pods)
        target = f"{NAMESPACE}/web-b"
        deadline = time.monotonic() + 20
        while True:
            seen = {e.key: probe.source_ip_seen(e.netns, EXTERNAL_IP, EXTERNAL_PORT) or ""
                    for e in endpoints}
            egress_ip = assigned_egress_ip(lab)
            if (egress_ip and seen.get(target) == egress_ip) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(10)
    progress(f"source IP seen by the outside world ({EXTERNAL_IP}); web-b's Egress IP "
             f"is {egress_ip or 'not assigned'}:")
    for key, ip in seen.items():
        progress(f"  {key:<12} -> {ip or 'no answer'}")
    return seen


def assigned_egress_ip(lab: LabDir) -> str:
    """The Egress IP the demo's Egress reports ("" until a node holds it)."""
    from kubernetes import client

    api = client.CustomObjectsApi(cluster.kube_client(lab))
    egress = api.get_cluster_custom_object("crd.antrea.io", "v1beta1", "egresses",
                                           "demo-web-b")
    return str((egress.get("status") or {}).get("egressIP") or "")
