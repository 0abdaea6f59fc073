"""antrea-controller in an `--cni antrea` lab: it runs in the underlay netns, publishes its
CA, and a client in a node's netns that finds it the way an agent does (Service endpoints,
antrea-ca, its own token) completes a TLS handshake and receives NetworkPolicies."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from waiting import wait_for

from antrea_lab import cluster
from antrea_lab.labdir import LabDir

pytestmark = pytest.mark.lab

# Runs inside a node's netns with the node's kubeconfig: discovery as the agent does it,
# then either a TLS handshake or a watch whose events are printed as JSON lines.
PROBE = r'''
import json, socket, ssl, sys, time
from antrea_core.agent.controlplane import discovery
from antrea_core.agent.controlplane.client import ControllerWatch
from antrea_core.k8s.clientconfig import api_client

def out(**kw):
    print(json.dumps({"t": time.time(), **kw}), flush=True)

kubeconfig, node, mode = sys.argv[1:4]
api = api_client(kubeconfig)
found = discovery.discover(api, timeout=60)
out(event="found", address=found.address, server_name=found.server_name)
if mode == "handshake":
    ctx = ssl.create_default_context(cadata=found.ca_pem.decode())
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((found.host, found.port), timeout=10) as sock, \
            ctx.wrap_socket(sock, server_hostname=found.server_name) as tls:
        out(event="tls", version=tls.version())
    sys.exit(0)

class Handler:
    def replace_all(self, policies, atgs, ags):
        out(event="snapshot", policies=sorted(p.source.name for p in policies))
    def apply(self, ev):
        source = getattr(ev.obj, "source", None)
        out(event="apply", type=str(ev.type), kind=str(ev.kind), name=ev.name,
            source=source.name if source is not None else None)

watch = ControllerWatch(found.address, found.ca_pem, discovery.token_source(api), node,
                        Handler(), server_name=found.server_name)
watch.start()
out(event="synced", ok=watch.wait_synced(60))
sys.stdin.read()  # until the test closes stdin
watch.stop()
'''


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDir]:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces, Open vSwitch)")
    lab = LabDir(f"ctl{os.getpid() % 10000}", root=tmp_path_factory.mktemp("ctl-lab"))
    try:
        cluster.up(lab, 2, cni="antrea",
                   progress=lambda m: print(m, file=sys.stderr))
        yield lab
    finally:
        cluster.down(lab, progress=lambda m: print(m, file=sys.stderr))


@pytest.fixture(scope="module")
def core(lab: LabDir) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.kube_client(lab))


def antrea_lab(lab: LabDir, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(Path(sys.executable).parent / "antrea-lab"), "--name", lab.name, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ANTREA_LAB_DIR": str(lab.path)})


def probe_argv(lab: LabDir, node: str, mode: str, script: Path) -> list[str]:
    return ["ip", "netns", "exec", lab.netns(node), sys.executable, str(script),
            str(lab.node_kubeconfig(node)), node, mode]


class Watcher:
    """The probe's watch mode in a node netns; events arrive on a queue."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def next(self, pred: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if pred(event):
                return event

    def close(self) -> str:
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()  # the probe stops its watch and exits
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.stderr.read()


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("probe") / "controller_probe.py"
    path.write_text(PROBE)
    return path


def test_controller_runs_and_status_and_logs_show_it(lab: LabDir):
    status = antrea_lab(lab, "status")
    line = next(ln for ln in status.stdout.splitlines() if ln.split()[:1] == ["controller"])
    assert "running" in line and "NOT" not in line
    logs = antrea_lab(lab, "logs", "controller", "-n", "200")
    assert logs.returncode == 0
    assert "serving the control-plane API" in logs.stdout


def test_antrea_ca_configmap_holds_the_controllers_ca(lab: LabDir, core: client.CoreV1Api):
    cm = core.read_namespaced_config_map("antrea-ca", "kube-system")
    ca = (cluster.controller_dir(lab) / "certs" / "ca.crt").read_text()
    assert cm.data == {"ca.crt": ca}
    svc = core.read_namespaced_service("antrea", "kube-system")
    assert not svc.spec.selector
    assert [p.name for p in svc.spec.ports] == ["api"]


def test_node_finds_controller_by_discovery_and_completes_tls(lab: LabDir, script: Path):
    proc = subprocess.run(probe_argv(lab, "node1", "handshake", script), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found, tls = (json.loads(line) for line in proc.stdout.splitlines())
    assert found["address"] == f"192.168.77.1:{cluster.CONTROLLER_API_PORT}"
    assert found["server_name"] == "antrea.kube-system.svc"
    assert tls["event"] == "tls" and tls["version"].startswith("TLSv1.")


def _running_pod(core: client.CoreV1Api, ns: str, name: str, node: str) -> None:
    core.create_namespaced_pod(ns, {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [
            {"name": "c", "image": "echo", "ports": [{"containerPort": 80}]}]}})
    wait_for(lambda: (p := core.read_namespaced_pod(name, ns)).status.phase == "Running"
             and p.status.pod_ip, 90, f"pod {ns}/{name} running with an IP", every=0.3)


def test_network_policy_reaches_the_watching_node_within_2s_and_survives_restart(
        lab: LabDir, core: client.CoreV1Api, script: Path):
    net = client.NetworkingV1Api(cluster.kube_client(lab))
    core.create_namespace({"metadata": {"name": "ctl"}})
    _running_pod(core, "ctl", "web", "node1")
    watcher = Watcher(probe_argv(lab, "node1", "watch", script))
    try:
        synced = watcher.next(lambda e: e["event"] == "synced", 90, "the watch to sync")
        assert synced["ok"]
        start = time.time()
        net.create_namespaced_network_policy("ctl", {
            "metadata": {"name": "deny-web"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                     "policyTypes": ["Ingress"]}})
        got = watcher.next(lambda e: e.get("kind") == "NetworkPolicy"
                           and e.get("source") == "deny-web", 10, "the policy on node1")
        assert got["type"] == "ADDED"
        latency = got["t"] - start
        print(f"NetworkPolicy API create -> node1 watch event: {latency * 1000:.0f} ms",
              file=sys.stderr)
        assert latency < 2.0

        # A controller restart: same CA (certificates kept), the node reconnects and
        # gets the policy again from the new controller's initial sync.
        ca_before = (cluster.controller_dir(lab) / "certs" / "ca.crt").read_text()
        restarted = antrea_lab(lab, "restart", "controller")
        assert restarted.returncode == 0, restarted.stderr
        assert (cluster.controller_dir(lab) / "certs" / "ca.crt").read_text() == ca_before
        snap = watcher.next(lambda e: e["event"] == "snapshot" and e["policies"], 60,
                            "a snapshot from the restarted controller")
        assert snap["policies"] == ["deny-web"]

        net.delete_namespaced_network_policy("deny-web", "ctl")
        watcher.next(lambda e: e.get("kind") == "NetworkPolicy" and e["type"] == "DELETED",
                     10, "the deletion on node1")
    finally:
        err = watcher.close()
        if watcher.proc.returncode != 0:
            print(err, file=sys.stderr)
