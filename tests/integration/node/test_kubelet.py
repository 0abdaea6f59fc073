"""The kubelet against the lab API server: node registration, pods with bridge CNI."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from waiting import wait_for

from antrea_lab import processes
from antrea_lab.credentials import ensure_credentials
from antrea_lab.labdir import LabDir
from antrea_lab.node import netns, sandbox, topology
from antrea_lab.processes import is_ours as pid_is

pytestmark = pytest.mark.integration

LAB = f"h4k{os.getpid() % 10000}"
NODE = "node1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




class Cluster:
    def __init__(self, root: Path) -> None:
        self.lab = LabDir(LAB, root)
        self.port = free_port()
        self.topo = topology.plan(LAB, [NODE])
        self.pids: dict[str, int] = {}
        self.core: client.CoreV1Api

    def up(self) -> None:
        lab = self.lab
        ensure_credentials(lab, [NODE], self.port)
        topology.create(LAB, [NODE])
        py = sys.executable
        self.spawn("apiserver", [
            py, "-m", "antrea_lab.apiserver", "--data-dir", str(lab.apiserver_data),
            "--pki-dir", str(lab.pki), "--token-file", str(lab.tokens),
            "--listen", f"127.0.0.1:{self.port}",
            "--listen-netns", f"{self.topo.underlay_netns}={topology.GATEWAY_IP}:{self.port}",
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--service-node-port-range", "30000-32767"])
        api = config.new_client_from_config(config_file=str(lab.kubeconfig))
        self.core = client.CoreV1Api(api)
        wait_for(self._api_up, 30, "API server")
        self.spawn("controllers", [
            py, "-m", "antrea_lab.controllers",
            "--kubeconfig", str(lab.path / "controller-manager.kubeconfig"),
            "--cluster-cidr", "10.244.0.0/16", "--node-cidr-mask-size", "24"])
        self.start_kubelet()

    def start_kubelet(self) -> None:
        lab = self.lab
        self.spawn("kubelet", [
            sys.executable, "-m", "antrea_lab.node.kubelet", "--node-name", NODE,
            "--kubeconfig", str(lab.node_kubeconfig(NODE)), "--node-ip", "192.168.77.11",
            "--lab-name", LAB, "--cni-conf-dir", str(lab.cni_conf_dir(NODE)),
            "--cni-bin-dir", f"{lab.cni_bin_dir(NODE)}:/usr/lib/cni",
            "--pod-dir", str(lab.pod_dir(NODE)), "--install-bridge-cni"],
            netns=self.topo.node(NODE).netns)

    def stop_kubelet(self) -> None:
        processes.stop(self.pids.pop("kubelet"), "antrea_lab.node.kubelet")

    def _api_up(self) -> bool:
        try:
            self.core.list_namespace()
            return True
        except Exception:
            return False

    def spawn(self, name: str, argv: list[str], netns: str | None = None) -> None:
        self.pids[name] = processes.spawn(argv, self.lab.log(name), self.lab.pids / f"{name}.pid",
                                          netns=netns)

    def down(self) -> None:
        for name in ("kubelet", "controllers", "apiserver"):
            if name in self.pids:
                processes.stop(self.pids[name], "antrea_lab")
        sandbox.remove_all(self.lab.pod_dir(NODE))
        prefix = f"antrea-{LAB}-pod-"
        for ns in sorted(p.name for p in netns.NETNS_RUN_DIR.glob(f"{prefix}*")):
            for pid in _pids_in_netns(ns):
                processes.stop(pid, "", timeout=3)
            netns.delete(ns)
        for pid in [p for ns in self.topo.all_netns() for p in _pids_in_netns(ns)]:
            processes.stop(pid, "", timeout=3)
        topology.destroy(self.topo)

    def logs(self, name: str) -> str:
        try:
            return self.lab.log(name).read_text()[-4000:]
        except FileNotFoundError:
            return ""


def _pids_in_netns(name: str) -> list[int]:
    try:
        target = os.stat(netns.path(name)).st_ino
    except FileNotFoundError:
        return []
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino == target and int(entry.name) != 1:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("lab"))
    try:
        c.up()
        yield c
    finally:
        for name in ("kubelet", "apiserver", "controllers"):
            sys.stderr.write(f"--- {name} log ---\n{c.logs(name)}\n")
        c.down()


def pod_manifest(name: str, **spec: object) -> dict:
    base = {"containers": [{"name": "web", "image": "antrea-lab/workload",
                            "ports": [{"containerPort": 80}, {"containerPort": 81,
                                                              "protocol": "UDP"}]}],
            "nodeName": NODE, "terminationGracePeriodSeconds": 2}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": base}


def running_pod(core: client.CoreV1Api, name: str, timeout: float = 60) -> client.V1Pod:
    def ready() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, "default")
        conds = {c.type: c.status for c in pod.status.conditions or []}
        ok = pod.status.phase == "Running" and pod.status.pod_ip and conds.get("Ready") == "True"
        return pod if ok else None

    return wait_for(ready, timeout, f"pod {name} Running")  # type: ignore[return-value]


def test_node_registers_and_becomes_ready_once_bridge_cni_is_installed(cluster: Cluster):
    core = cluster.core

    def ready_node() -> client.V1Node | None:
        try:
            node = core.read_node(NODE)
        except ApiException:
            return None
        conds = {c.type: c.status for c in node.status.conditions or []}
        return node if conds.get("Ready") == "True" else None

    node = wait_for(ready_node, 60, "node Ready")
    assert node.metadata.labels["kubernetes.io/hostname"] == NODE
    assert node.metadata.labels["kubernetes.io/os"] == "linux"
    addrs = {a.type: a.address for a in node.status.addresses}
    assert addrs == {"InternalIP": "192.168.77.11", "Hostname": NODE}
    assert node.status.node_info.container_runtime_version == "antrea-lab://0.1"
    assert node.status.capacity["pods"] == "110"
    types = {c.type for c in node.status.conditions}
    assert {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure",
            "NetworkUnavailable"} <= types
    conf = json.loads((cluster.lab.cni_conf_dir(NODE) / "10-lab-bridge.conflist").read_text())
    subnet = conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"]
    assert subnet == node.spec.pod_cidr
    lease = client.CoordinationV1Api(core.api_client).read_namespaced_lease(
        NODE, "kube-node-lease")
    assert lease.spec.holder_identity == NODE


def test_two_pods_get_ips_talk_over_tcp_and_delete_runs_cni_del(cluster: Cluster):
    core = cluster.core
    for name in ("web-a", "web-b"):
        core.create_namespaced_pod("default", pod_manifest(name))
    a = running_pod(core, "web-a")
    b = running_pod(core, "web-b")
    node = core.read_node(NODE)
    for pod in (a, b):
        assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(
            node.spec.pod_cidr)
        assert pod.status.host_ip == "192.168.77.11"
        (cs,) = pod.status.container_statuses
        assert cs.ready and cs.started and cs.state.running is not None
        assert cs.container_id.startswith("antrea-lab://")
    assert a.status.pod_ip != b.status.pod_ip

    ns_a = f"antrea-{LAB}-pod-{a.metadata.uid.replace('-', '')[:12]}"
    assert netns.exists(ns_a)

    def probe() -> dict | None:
        out = subprocess.run(
            ["ip", "netns", "exec", ns_a, sys.executable, "-m", "antrea_lab.workload", "probe",
             "--proto", "tcp", "--timeout", "1", f"{b.status.pod_ip}:80"],
            capture_output=True, text=True, timeout=30)
        assert out.stdout, out.stderr
        result = json.loads(out.stdout.splitlines()[0])
        return result if result["ok"] else None

    assert wait_for(probe, 15, "TCP probe a→b")

    ipam_dir = cluster.lab.node(NODE) / "cni" / "ipam" / "lab-bridge"
    assert (ipam_dir / a.status.pod_ip).exists()
    core.delete_namespaced_pod("web-a", "default")

    def gone() -> bool:
        try:
            core.read_namespaced_pod("web-a", "default")
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_for(gone, 30, "pod object deleted")
    assert not netns.exists(ns_a)
    assert not (ipam_dir / a.status.pod_ip).exists()  # host-local released it: CNI DEL ran
    core.delete_namespaced_pod("web-b", "default")
    wait_for(lambda: not core.list_namespaced_pod("default").items, 30, "all pods gone")


def test_pods_keep_running_across_kubelet_restart_and_deleted_ones_are_cleaned(
        cluster: Cluster):
    core = cluster.core
    for name in ("keep", "drop"):
        core.create_namespaced_pod("default", pod_manifest(name))
    keep, drop = running_pod(core, "keep"), running_pod(core, "drop")
    keep_dir = cluster.lab.pod_dir(NODE) / f"default_keep_{keep.metadata.uid}"
    pid = json.loads((keep_dir / "web.state.json").read_text())["pid"]
    cluster.stop_kubelet()
    # While the kubelet is down the pod cannot be finalised: force it away.
    core.delete_namespaced_pod("drop", "default", grace_period_seconds=0)
    cluster.start_kubelet()
    drop_ns = f"antrea-{LAB}-pod-{drop.metadata.uid.replace('-', '')[:12]}"
    wait_for(lambda: not netns.exists(drop_ns), 30, "orphan pod netns removed")
    assert pid_is(pid, "antrea_lab.workload")  # same process, re-adopted
    again = running_pod(core, "keep")
    assert again.status.container_statuses[0].restart_count == 0
    core.delete_namespaced_pod("keep", "default")
    wait_for(lambda: not pid_is(pid, "antrea_lab.workload"), 30, "container stopped")


def test_restart_policies_and_container_env(cluster: Cluster):
    core = cluster.core
    core.create_namespaced_pod("default", pod_manifest(
        "once", restartPolicy="Never",
        containers=[{"name": "job", "image": "busybox", "command": ["sh", "-c", "exit 3"]}]))
    core.create_namespaced_pod("default", pod_manifest(
        "crash", restartPolicy="Always",
        containers=[{"name": "c", "image": "busybox",
                     "command": ["sh", "-c", "echo $(POD_NAME) $MSG; exit 1"],
                     "env": [{"name": "MSG", "value": "hello"}]}]))

    def failed() -> client.V1Pod | None:
        pod = core.read_namespaced_pod("once", "default")
        return pod if pod.status.phase == "Failed" else None

    pod = wait_for(failed, 30, "pod once Failed")
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3

    def restarted() -> client.V1Pod | None:
        pod = core.read_namespaced_pod("crash", "default")
        cs = (pod.status.container_statuses or [None])[0]
        return pod if cs and cs.restart_count >= 1 else None

    wait_for(restarted, 30, "crash restarted")
    crash = core.read_namespaced_pod("crash", "default")
    log_file = (cluster.lab.pod_dir(NODE) / f"default_crash_{crash.metadata.uid}" / "c.log")
    assert "crash hello" in log_file.read_text()
    for name in ("once", "crash"):
        core.delete_namespaced_pod(name, "default")
    wait_for(lambda: not core.list_namespaced_pod("default").items, 30, "pods gone")


def test_cni_add_failure_is_an_event_and_is_retried(cluster: Cluster):
    core = cluster.core
    broken = cluster.lab.cni_conf_dir(NODE) / "00-broken.conflist"
    broken.write_text(json.dumps({"cniVersion": "1.0.0", "name": "broken",
                                  "plugins": [{"type": "no-such-plugin"}]}))
    try:
        core.create_namespaced_pod("default", pod_manifest("retry"))

        def failed_event() -> list:
            events = core.list_namespaced_event("default").items
            return [e for e in events if e.reason == "FailedCreatePodSandBox"
                    and e.involved_object.name == "retry"]

        (event, *_) = wait_for(failed_event, 30, "FailedCreatePodSandBox event")
        assert "no-such-plugin" in event.message
        assert event.type == "Warning" and event.source.host == NODE
        pod = core.read_namespaced_pod("retry", "default")
        assert pod.status.phase == "Pending"
    finally:
        broken.unlink()
    running_pod(core, "retry", timeout=60)  # the back-off retry picks the bridge config
    core.delete_namespaced_pod("retry", "default")
    wait_for(lambda: not core.list_namespaced_pod("default").items, 30, "pods gone")


def test_readiness_probe_gates_ready(cluster: Cluster):
    core = cluster.core
    for name, port in (("probe-ok", 80), ("probe-bad", 81)):  # 81 is UDP only
        manifest = pod_manifest(name)
        manifest["spec"]["containers"][0]["readinessProbe"] = {
            "tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1}
        core.create_namespaced_pod("default", manifest)
    running_pod(core, "probe-ok")

    def running_unready() -> bool:
        pod = core.read_namespaced_pod("probe-bad", "default")
        conds = {c.type: c.status for c in pod.status.conditions or []}
        return pod.status.phase == "Running" and conds.get("Ready") == "False"

    wait_for(running_unready, 30, "probe-bad Running but not Ready")
    time.sleep(3)  # several probe periods later it is still not ready
    bad = core.read_namespaced_pod("probe-bad", "default")
    assert not bad.status.container_statuses[0].ready
    for name in ("probe-ok", "probe-bad"):
        core.delete_namespaced_pod(name, "default")
    wait_for(lambda: not core.list_namespaced_pod("default").items, 30, "pods gone")
