"""The lab's demo: apply demo pods with kubectl, wait until they run, print the matrix."""

from __future__ import annotations

import subprocess
import time
from importlib import resources

from antrea_lab import cluster, probe
from antrea_lab.labdir import LabDir, LabError

NAMESPACE = "demo"


def manifest_path() -> str:
    return str(resources.files("antrea_lab") / "manifests" / "demo.yaml")


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


def run(lab: LabDir, progress: cluster.Progress = print) -> probe.Matrix:
    from antrea_lab.cli import kubectl_path

    progress("demo: kubectl apply -f " + manifest_path())
    subprocess.run([kubectl_path(), "--kubeconfig", str(lab.kubeconfig), "apply", "-f",
                    manifest_path()], check=True)
    pods = wait_running(lab, NAMESPACE, 4)
    subprocess.run([kubectl_path(), "--kubeconfig", str(lab.kubeconfig), "get", "pods", "-n",
                    NAMESPACE, "-o", "wide"], check=False)
    # 3 s: TCP may retransmit a first SYN lost right after start-up (a known issue).
    matrix = probe.probe_matrix(probe.pod_endpoints(lab, pods), proto="tcp", port=80,
                                timeout=3)
    progress("\nconnectivity matrix ('.' = reachable, 'X' = not):")
    progress(matrix.render())
    return matrix
