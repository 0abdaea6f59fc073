"""IPsec in a whole lab (--cni antrea, trafficEncryptionMode ipsec, 2 nodes, one lab for
the module): pod traffic between nodes crosses the underlay only as ESP-in-UDP, never as
plaintext tunnel packets, also while charon or the agent restarts.

Captures run on the lab's underlay (every node's uplink), for UDP: 4500 is ESP-in-UDP
(and IKE after NAT-T), 500 IKE, 4789 plaintext VXLAN (the kernel device without an SA),
6081 plaintext Geneve (the OVS tunnel port).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from waiting import wait_until

from antrea_ipsec.sa import SAManager
from antrea_ipsec.tunnelport import DEVICE, peer_mac
from antrea_lab import cluster
from antrea_lab.capture import capture
from antrea_lab.labdir import LabDir
from antrea_lab.processes import proc_state

pytestmark = pytest.mark.lab

NS = "ipsec"
API_PORT = int(os.environ.get("ANTREA_TEST_IPSEC_API_PORT", "46463"))
NODE_IPS = {"node1": "192.168.77.11", "node2": "192.168.77.12"}
PODS = {"a": "node1", "b": "node2", "c": "node1"}
POD_MTU = 1350  # ipsec0's 1400 minus the VXLAN frame around the pod packet
BULK = 4 * 1024 * 1024
SINK = """
import socket
server = socket.create_server(("0.0.0.0", 5201))
print("listening", flush=True)
conn, _ = server.accept()
total = 0
while data := conn.recv(65536):
    total += len(data)
print(total, flush=True)
"""
SOURCE = f"""
import socket, sys
conn = socket.create_connection((sys.argv[1], 5201), timeout=30)
conn.sendall(bytes({BULK}))
conn.shutdown(socket.SHUT_WR)
conn.recv(1)
"""


@dataclass
class Capture:
    esp_in_udp: int
    ike: int
    plaintext_vxlan: int
    plaintext_geneve: int
    esp_bytes: int


class IPsecLab:
    def __init__(self, lab: LabDir) -> None:
        self.lab = lab
        self.core = client.CoreV1Api(cluster.kube_client(lab))

    def pod(self, name: str) -> client.V1Pod:
        return self.core.read_namespaced_pod(name, NS)

    def netns(self, pod: str) -> str:
        return self.lab.pod_netns(self.pod(pod).metadata.uid)

    def probe(self, src: str, target: str, proto: str = "tcp", timeout: float = 1.0) -> dict:
        out = subprocess.run(
            ["ip", "netns", "exec", self.netns(src), sys.executable, "-m",
             "antrea_lab.workload", "probe", "--proto", proto, "--timeout", str(timeout),
             "--hostname", target], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip(), f"probe {src} -> {target}: {out.stderr[-1500:]}"
        return json.loads(out.stdout.splitlines()[0])

    def reaches(self, src: str, dst: str) -> bool:
        return bool(self.probe(src, f"{self.pod(dst).status.pod_ip}:80", timeout=0.5)["ok"])

    def esp_bytes_out(self, node: str) -> int:
        """Bytes charon encrypted on `node`'s installed CHILD SAs (its own counter)."""
        return sum(c.bytes_out for ike in self.sas(node).list_sas() for c in ike.children
                   if c.installed)

    def sas(self, node: str) -> SAManager:
        return SAManager(self.ipsec_dir(node) / "charon.vici", node)

    def ipsec_dir(self, node: str) -> Path:
        return self.lab.node(node) / "agent" / "ipsec"

    def charon_pid(self, node: str) -> int:
        return int((self.ipsec_dir(node) / "run" / "charon.pid").read_text())

    def in_node(self, node: str, *argv: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.lab.netns(node), *argv],
                              capture_output=True, text=True, check=True).stdout

    def fail_closed_drops(self, node: str) -> int:
        out = self.in_node(node, "iptables", "-w", "5", "-L", "ANTREA-IPSEC-OUT", "-v", "-n",
                           "-x")
        return sum(int(line.split()[0]) for line in out.splitlines()[2:] if line.strip())

    @contextmanager
    def capture(self) -> Iterator[list[Capture]]:
        """Capture the underlay's UDP while the block runs; the result is appended."""
        path = self.lab.path / f"underlay-{time.monotonic_ns()}.pcap"
        result: list[Capture] = []
        with capture(self.lab.netns("underlay"), path, bpf="udp") as pcap:
            yield result
        result.append(Capture(esp_in_udp=pcap.count("udp port 4500"),
                              ike=pcap.count("udp port 500"),
                              plaintext_vxlan=pcap.count("udp port 4789"),
                              plaintext_geneve=pcap.count("udp port 6081"),
                              esp_bytes=pcap.udp_payload_bytes("udp port 4500")))


@pytest.fixture(scope="module")
def ilab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IPsecLab]:
    lab = LabDir(f"hi{os.getpid() % 10000}", root=tmp_path_factory.mktemp("hi-ipsec"))
    try:
        cluster.up(lab, 2, cni="antrea", api_port=API_PORT,
                   progress=lambda m: print(m, file=sys.stderr),
                   agent_overrides={"trafficEncryptionMode": "ipsec"})
        il = IPsecLab(lab)
        il.core.create_namespace({"metadata": {"name": NS}})
        for name, node in PODS.items():
            il.core.create_namespaced_pod(NS, {
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {"nodeName": node, "containers": [{
                    "name": "c", "image": "echo", "ports": [{"containerPort": 80}]}]}})
        wait_until("pods running", lambda: all(
            (p := il.pod(n)).status.phase == "Running" and p.status.pod_ip for n in PODS), 90)
        wait_until("an SA between the nodes", lambda: il.reaches("a", "b"), 60)
        yield il
    finally:
        cluster.down(lab, progress=lambda m: print(m, file=sys.stderr))


def test_pod_traffic_between_nodes_is_esp_only(ilab: IPsecLab) -> None:
    eth0 = subprocess.run(["ip", "-n", ilab.netns("a"), "link", "show", "eth0"],
                          capture_output=True, text=True, check=True).stdout
    assert f"mtu {POD_MTU} " in eth0
    sink = subprocess.Popen(["ip", "netns", "exec", ilab.netns("b"), sys.executable, "-c",
                             SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "listening"
        encrypted_before = ilab.esp_bytes_out("node1")
        with ilab.capture() as cap:
            assert ilab.probe("a", f"{ilab.pod('b').status.pod_ip}:80")["hostname"] == "b"
            assert ilab.probe("b", f"{ilab.pod('a').status.pod_ip}:80")["ok"]
            assert ilab.probe("a", f"{ilab.pod('b').status.pod_ip}:80", proto="icmp")["ok"]
            # 4 MiB in full-sized segments: every pod-MTU packet fits one ESP packet.
            subprocess.run(["ip", "netns", "exec", ilab.netns("a"), sys.executable, "-c",
                            SOURCE, ilab.pod("b").status.pod_ip], check=True, timeout=60)
            received = int(sink.stdout.readline())
    finally:
        sink.kill()
        sink.wait(10)
    assert received == BULK
    [seen] = cap
    print(f"underlay during 4 MiB pod-to-pod: {seen}", file=sys.stderr)
    assert seen.plaintext_vxlan == 0 and seen.plaintext_geneve == 0
    assert seen.esp_in_udp > 0
    # charon encrypted the whole transfer (the capture may miss packets under load).
    assert ilab.esp_bytes_out("node1") - encrypted_before > BULK
    # Same node: no tunnel, no IPsec involved.
    assert ilab.probe("a", f"{ilab.pod('c').status.pod_ip}:80")["hostname"] == "c"


def test_both_nodes_have_an_installed_child_sa_to_each_other(ilab: IPsecLab) -> None:
    for node, peer in (("node1", "node2"), ("node2", "node1")):
        sas = ilab.sas(node)
        assert sas.connections() == [f"antrea-{peer}"]
        children = [c for ike in sas.list_sas() if ike.established for c in ike.children
                    if c.installed]
        assert children, f"{node}: no installed CHILD SA"
        child = children[0]
        assert child.local_ts == (f"{NODE_IPS[node]}/32[udp]",)
        assert child.remote_ts == (f"{NODE_IPS[peer]}/32[udp]",)
        assert child.encryption.startswith("AES_GCM_16")
    fdb = ilab.in_node("node1", "bridge", "fdb", "show", "dev", DEVICE)
    assert f"{peer_mac(NODE_IPS['node2'])} dst {NODE_IPS['node2']} self permanent" in fdb


def test_charon_killed_tunnel_traffic_is_dropped_never_plaintext_then_recovers(
        ilab: IPsecLab) -> None:
    old = ilab.charon_pid("node1")
    agent = ilab.lab.load().pids["node1-antrea-agent"]  # type: ignore[union-attr]
    drops_before = ilab.fail_closed_drops("node1")
    with ilab.capture() as cap:
        # The agent is frozen so that it cannot restart charon yet: the outage lasts
        # as long as the test needs to look at it.
        os.kill(agent, signal.SIGSTOP)
        try:
            os.kill(old, signal.SIGKILL)
            # A zombie until the frozen agent reaps it.
            wait_until("charon gone", lambda: proc_state(old) in ("", "Z"), 10)
            assert not ilab.reaches("a", "b")
            assert not ilab.reaches("b", "a")
            assert ilab.fail_closed_drops("node1") > drops_before
        finally:
            os.kill(agent, signal.SIGCONT)
        took = wait_until("pod traffic back", lambda: ilab.reaches("a", "b"), 30)
    print(f"charon SIGKILL, agent resumed -> traffic back after {took:.2f}s; {cap[0]}",
          file=sys.stderr)
    assert cap[0].plaintext_vxlan == 0 and cap[0].plaintext_geneve == 0
    assert ilab.charon_pid("node1") != old


def test_node_objects_drive_the_peers(ilab: IPsecLab) -> None:
    ip = "192.168.77.19"  # nothing answers there: the SA stays connecting
    ilab.core.create_node({"metadata": {"name": "node9"},
                           "spec": {"podCIDR": "10.244.9.0/24",
                                    "podCIDRs": ["10.244.9.0/24"]},
                           "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
    try:
        wait_until("node9 loaded in node1's charon",
                   lambda: "antrea-node9" in ilab.sas("node1").connections(), 20)
        assert peer_mac(ip) in ilab.in_node("node1", "bridge", "fdb", "show", "dev", DEVICE)
        assert ip in ilab.in_node("node1", "iptables", "-w", "5", "-S", "ANTREA-IPSEC-OUT")
    finally:
        ilab.core.delete_node("node9")
    wait_until("node9 unloaded", lambda: "antrea-node9" not in ilab.sas("node1").connections(),
               20)
    assert peer_mac(ip) not in ilab.in_node("node1", "bridge", "fdb", "show", "dev", DEVICE)
    assert ip not in ilab.in_node("node1", "iptables", "-w", "5", "-S", "ANTREA-IPSEC-OUT")
    assert ilab.reaches("a", "b")  # the real peer is untouched


def test_agent_restart_keeps_the_sas_and_tunnel_traffic_flowing(ilab: IPsecLab) -> None:
    old = ilab.charon_pid("node1")
    log = ilab.lab.log("node1-antrea-agent")
    adopted_before = log.read_text().count("adopted=True")
    results: list[bool] = []
    with ilab.capture() as cap:
        cluster.restart(ilab.lab, "node1-antrea-agent")
        start = time.monotonic()
        while log.read_text().count("adopted=True") == adopted_before:
            assert time.monotonic() - start < 60, "the new agent did not adopt charon"
            results.append(ilab.reaches("a", "b"))
        for _ in range(5):  # and once it runs
            results.append(ilab.reaches("a", "b"))
    print(f"agent restart: {results.count(False)} of {len(results)} probes failed; "
          f"{cap[0]}", file=sys.stderr)
    assert ilab.charon_pid("node1") == old  # the same charon, the same SAs
    assert all(results)
    assert cap[0].plaintext_vxlan == 0 and cap[0].plaintext_geneve == 0


def test_node_deleted_while_the_agent_was_down_is_cleaned_up_at_start(
        ilab: IPsecLab) -> None:
    ip = "192.168.77.20"
    ilab.core.create_node({"metadata": {"name": "node8"},
                           "spec": {"podCIDR": "10.244.8.0/24",
                                    "podCIDRs": ["10.244.8.0/24"]},
                           "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
    wait_until("node8 loaded in node1's charon",
               lambda: "antrea-node8" in ilab.sas("node1").connections(), 20)
    agent = ilab.lab.load().pids["node1-antrea-agent"]
    os.kill(agent, signal.SIGSTOP)  # frozen: it never sees the deletion
    try:
        ilab.core.delete_node("node8")
    finally:
        cluster.restart(ilab.lab, "node1-antrea-agent", kill=True)
    wait_until("node8 unloaded by the new agent",
               lambda: "antrea-node8" not in ilab.sas("node1").connections(), 30)
    wait_until("stale fail-closed rules removed", lambda: ip not in ilab.in_node(
        "node1", "iptables", "-w", "5", "-S", "ANTREA-IPSEC-OUT"), 10)
    assert peer_mac(ip) not in ilab.in_node("node1", "bridge", "fdb", "show", "dev", DEVICE)
    assert ilab.reaches("a", "b")
