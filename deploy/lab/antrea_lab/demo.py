"""The lab's demo: apply demo pods with kubectl, wait until they run, print the matrix;
with antrea-agent networking the pods, then apply a NetworkPolicy and show it enforced."""

from __future__ import annotations

import subprocess
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
