"""Egress in a whole lab (--cni antrea, 3 nodes, one lab for the module): pods' traffic to
the outside world (the lab's external netns) leaves with their Egress IP, from every
node, and the IP moves when its node fails.

The external netns runs the lab workload with `--name @peer`: a probe's "hostname" is
the source address the connection arrived with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from kubernetes import client
from waiting import wait_until

from antrea_lab import cluster
from antrea_lab.labdir import LabDir
from antrea_lab.node.topology import EXTERNAL_IP
from antrea_lab.probe import source_ip_seen

pytestmark = pytest.mark.lab

NS = "egress"
API_PORT = int(os.environ.get("ANTREA_TEST_EGRESS_API_PORT", "46453"))
NODE_IPS = {"node1": "192.168.77.11", "node2": "192.168.77.12", "node3": "192.168.77.13"}
POOL_RANGE = ("192.168.77.200", "192.168.77.209")  # in the underlay subnet, unused
MANUAL_IP = "192.168.77.220"
EXCEPT_IP = "192.168.77.253"  # a second address of the external netns, in exceptCIDRs
PORT = 8080
GROUP, VERSION = "crd.antrea.io", "v1beta1"
EGRESS_NODES = ("node2", "node3")  # the pool's nodeSelector picks these
WEB_PODS = {"web-1": "node1", "web-2": "node2", "web-3": "node3"}


def _pod(name: str, node: str, labels: dict[str, str]) -> dict:
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "echo", "ports": [
                {"containerPort": 80, "protocol": "TCP"}]}]}}


class EgressLab:
    def __init__(self, lab: LabDir) -> None:
        self.lab = lab
        api = cluster.kube_client(lab)
        self.core = client.CoreV1Api(api)
        self.crd = client.CustomObjectsApi(api)

    def create(self, plural: str, body: dict) -> None:
        self.crd.create_cluster_custom_object(GROUP, VERSION, plural, body)

    def delete(self, plural: str, name: str) -> None:
        self.crd.delete_cluster_custom_object(GROUP, VERSION, plural, name)

    def egress(self, name: str) -> dict:
        return self.crd.get_cluster_custom_object(GROUP, VERSION, "egresses", name)

    def source_seen(self, pod: str, server: str = EXTERNAL_IP) -> str | None:
        """The source IP the external server saw for a new connection from `pod`
        (None when the connection failed)."""
        uid = self.core.read_namespaced_pod(pod, NS).metadata.uid
        return source_ip_seen(self.lab.pod_netns(uid), server, PORT)

    def node_addresses(self, node: str) -> str:
        return subprocess.run(["ip", "-n", self.lab.netns(node), "-4", "-o", "addr"],
                              capture_output=True, text=True, check=True).stdout

    def agent_pid(self, node: str) -> int:
        state = self.lab.load()
        assert state is not None
        return state.pids[f"{node}-antrea-agent"]


@pytest.fixture(scope="module")
def elab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EgressLab]:
    lab = LabDir(f"he{os.getpid() % 10000}", root=tmp_path_factory.mktemp("he-egress"))
    server = None
    try:
        cluster.up(lab, 3, cni="antrea", api_port=API_PORT,
                   progress=lambda m: print(m, file=sys.stderr),
                   agent_overrides={"egress": {"exceptCIDRs": [f"{EXCEPT_IP}/32"]}})
        e = EgressLab(lab)
        subprocess.run(["ip", "-n", lab.netns("external"), "addr", "add", f"{EXCEPT_IP}/24",
                        "dev", "eth0"], check=True)
        server = subprocess.Popen(["ip", "netns", "exec", lab.netns("external"),
                                   sys.executable, "-m", "antrea_lab.workload", "serve",
                                   "--tcp", str(PORT), "--name", "@peer"],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        assert json.loads(server.stdout.readline())["listening"]
        for node in EGRESS_NODES:
            e.core.patch_node(node, {"metadata": {"labels": {"egress-gateway": "yes"}}})
        e.core.create_namespace({"metadata": {"name": NS, "labels": {"team": "web"}}})
        pods = {"web-1": "node1", "web-2": "node2", "web-3": "node3",
                "db-1": "node1", "plain-1": "node1"}
        for name, node in pods.items():
            e.core.create_namespaced_pod(NS, _pod(name, node, {"app": name.split("-")[0]}))
        wait_until("pods running", lambda: all(
            p.status.phase == "Running" and p.status.pod_ip
            for p in e.core.list_namespaced_pod(NS).items) and
            len(e.core.list_namespaced_pod(NS).items) == len(pods), 90)
        e.create("externalippools", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ExternalIPPool",
            "metadata": {"name": "outside"},
            "spec": {"ipRanges": [{"start": POOL_RANGE[0], "end": POOL_RANGE[1]}],
                     "nodeSelector": {"matchLabels": {"egress-gateway": "yes"}}}})
        yield e
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        cluster.down(lab, progress=lambda m: print(m, file=sys.stderr))


def assigned(elab: EgressLab, name: str) -> tuple[str, str] | None:
    status = elab.egress(name).get("status") or {}
    node, ip = status.get("egressNode"), status.get("egressIP")
    return (node, ip) if node and ip else None


def ensure_web(elab: EgressLab) -> tuple[str, str]:
    """Egress "web" (pods app=web anywhere, IP from the pool), assigned; (node, IP)."""
    try:
        elab.egress("web")
    except client.ApiException as exc:
        assert exc.status == 404
        elab.create("egresses", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Egress", "metadata": {"name": "web"},
            "spec": {"appliedTo": {"podSelector": {"matchLabels": {"app": "web"}}},
                     "externalIPPool": "outside"}})
    wait_until("the Egress IP allocated and assigned", lambda: assigned(elab, "web"))
    return assigned(elab, "web")  # type: ignore[return-value]


def test_pods_of_an_egress_leave_with_its_ip_from_every_node_and_others_do_not(
        elab: EgressLab):
    ensure_web(elab)
    wait_until("the Egress IP allocated and assigned", lambda: assigned(elab, "web"))
    node, ip = assigned(elab, "web")  # type: ignore[misc]
    assert node in EGRESS_NODES
    lo, hi = (int(a.rsplit(".", 1)[1]) for a in POOL_RANGE)
    assert ip.startswith("192.168.77.") and lo <= int(ip.rsplit(".", 1)[1]) <= hi
    assert elab.egress("web")["spec"]["egressIP"] == ip
    assert f" {ip}/32 " in elab.node_addresses(node)
    assert not any(f" {ip}/" in elab.node_addresses(n) for n in NODE_IPS if n != node)
    for pod in ("web-1", "web-2", "web-3"):  # the Egress Node's own pod and tunneled ones
        wait_until(f"{pod} leaving with {ip}", lambda pod=pod: elab.source_seen(pod) == ip, 10)
    # Pods no Egress selects keep the masquerade to their own node's IP.
    assert elab.source_seen("db-1") == NODE_IPS["node1"]
    # exceptCIDRs: selected pods reach these destinations with their node's IP, whether
    # the Egress node is theirs (host SNAT skipped) or not (no redirect to the tunnel).
    for pod, home in WEB_PODS.items():
        assert elab.source_seen(pod, EXCEPT_IP) == NODE_IPS[home], pod


def test_an_egress_ip_configured_by_hand_serves_pods_of_every_node(elab: EgressLab):
    subprocess.run(["ip", "-n", elab.lab.netns("node1"), "addr", "add", f"{MANUAL_IP}/32",
                    "dev", "br-phy"], check=True)
    try:
        elab.create("egresses", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Egress",
            "metadata": {"name": "db"},
            "spec": {"appliedTo": {"namespaceSelector": {"matchLabels": {"team": "web"}},
                                   "podSelector": {"matchLabels": {"app": "db"}}},
                     "egressIP": MANUAL_IP}})
        wait_until("node1 reporting the manual IP",
                   lambda: assigned(elab, "db") == ("node1", MANUAL_IP))
        wait_until("db-1 leaving with the manual IP",
                   lambda: elab.source_seen("db-1") == MANUAL_IP, 10)
        assert elab.source_seen("plain-1") == NODE_IPS["node1"]
        elab.delete("egresses", "db")
        wait_until("db-1 back to its node's IP",
                   lambda: elab.source_seen("db-1") == NODE_IPS["node1"], 10)
        # Configured by hand: the agent leaves the address alone.
        assert f" {MANUAL_IP}/32 " in elab.node_addresses("node1")
    finally:
        subprocess.run(["ip", "-n", elab.lab.netns("node1"), "addr", "del", f"{MANUAL_IP}/32",
                        "dev", "br-phy"], check=False)


def test_the_egress_ip_moves_to_the_other_eligible_node_when_its_agent_hangs(
        elab: EgressLab):
    node, ip = ensure_web(elab)
    survivor = next(n for n in EGRESS_NODES if n != node)
    pid = elab.agent_pid(node)
    os.kill(pid, signal.SIGSTOP)  # renews nothing any more, as a dead node would
    try:
        failover = wait_until(f"{survivor} taking {ip} over",
                              lambda: assigned(elab, "web") == (survivor, ip), 30)
        print(f"failover: status moved after {failover:.1f} s", file=sys.stderr)
        assert f" {ip}/32 " in elab.node_addresses(survivor)
        # The hung node's own pod is lost with it, as on a dead node (replies to the IP
        # now reach the survivor, which never saw the connection).
        for pod in [p for p, n in WEB_PODS.items() if n != node]:
            wait_until(f"{pod} leaving through {survivor}",
                       lambda pod=pod: elab.source_seen(pod) == ip, 10)
    finally:
        os.kill(pid, signal.SIGCONT)
    # Back alive, the node wins its IP again (rendezvous hashing) and gives it back cleanly.
    wait_until(f"{node} taking {ip} back", lambda: assigned(elab, "web") == (node, ip), 30)
    wait_until(f"{survivor} releasing {ip}",
               lambda: f" {ip}/32 " not in elab.node_addresses(survivor), 10)
    for pod in ("web-1", "web-2", "web-3"):
        wait_until(f"{pod} leaving with {ip} again",
                   lambda pod=pod: elab.source_seen(pod) == ip, 10)


def test_deleting_the_egress_releases_its_ip_and_restores_the_masquerade(elab: EgressLab):
    node, ip = ensure_web(elab)
    elab.delete("egresses", "web")
    wait_until(f"{node} releasing {ip}", lambda: f" {ip}/32 " not in elab.node_addresses(node))
    for pod, home in WEB_PODS.items():
        wait_until(f"{pod} back to its node's IP",
                   lambda pod=pod, home=home: elab.source_seen(pod) == NODE_IPS[home], 10)
    usage = elab.crd.get_cluster_custom_object(GROUP, VERSION, "externalippools", "outside")
    assert (usage.get("status") or {}).get("usage", {}).get("used") == 0


def test_the_quick_start_demo_runs_its_three_acts_on_an_antrea_lab(elab: EgressLab):
    from antrea_lab import demo

    lines: list[str] = []
    matrix = demo.run(elab.lab, progress=lines.append, policy=True)
    text = "\n".join(lines)
    assert "connectivity matrix with the policy" in text
    assert matrix.reachable["demo/web-b"]["demo/web-a"] is False
    assert matrix.reachable["demo/web-d"]["demo/web-a"] is True
    egress_ip = demo.assigned_egress_ip(elab.lab)
    assert egress_ip.startswith("192.168.77.21")
    assert f"demo/web-b   -> {egress_ip}" in text
    node_ips = set(NODE_IPS.values())
    for pod in ("web-a", "web-c", "web-d"):
        seen = next(line for line in lines if line.strip().startswith(f"demo/{pod} "))
        assert seen.split("-> ")[1] in node_ips, seen
