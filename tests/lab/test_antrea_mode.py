"""A lab whose pods are networked by antrea-agent: veths on br-int, the OpenFlow pipeline,
Geneve between nodes over the userspace datapath."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from antrea_lab import cluster, probe
from antrea_lab.labdir import LabDir

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module", params=["geneve", "vxlan", "gre"])
def antrea_lab(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDir]:
    tunnel = request.param
    lab = LabDir(f"{tunnel[:3]}{os.getpid() % 10000}",
                 root=tmp_path_factory.mktemp(f"antrea-lab-{tunnel}"))
    try:
        cluster.up(lab, 2, cni="antrea", progress=lambda m: print(m, file=sys.stderr),
                   agent_overrides={"tunnelType": tunnel})
        port_type = subprocess.run(
            ["ovs-vsctl", f"--db=unix:{lab.ovs_dirs('node1')}/run/db.sock", "get",
             "Interface", "antrea-tun0", "type"], capture_output=True, text=True, check=True)
        assert port_type.stdout.strip() == tunnel
        _pods(lab, {"a1": "node1", "a2": "node1", "b1": "node2"})
        yield lab
    finally:
        cluster.down(lab, progress=lambda m: print(m, file=sys.stderr))


def _pods(lab: LabDir, placement: dict[str, str]) -> list:
    api = client.CoreV1Api(cluster.kube_client(lab))
    api.create_namespace({"metadata": {"name": "e2e"}})
    for name, node in placement.items():
        api.create_namespaced_pod("e2e", {
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "echo", "ports": [
                {"containerPort": 80, "protocol": "TCP"},
                {"containerPort": 80, "protocol": "UDP"}]}]}})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pods = [p for p in api.list_namespaced_pod("e2e").items
                if p.status.phase == "Running" and p.status.pod_ip]
        if len(pods) == len(placement):
            return pods
        time.sleep(0.3)
    raise AssertionError("pods not running")


def test_pods_get_ports_on_br_int_and_reach_each_other_within_and_across_nodes(antrea_lab):
    pods = client.CoreV1Api(cluster.kube_client(antrea_lab)).list_namespaced_pod("e2e").items
    by_name = {p.metadata.name: p for p in pods}
    # IPs come from each node's podCIDR, allocated by the agent's IPAM (gateway is .1).
    nodes = {n.metadata.name: n.spec.pod_cidr
             for n in client.CoreV1Api(cluster.kube_client(antrea_lab)).list_node().items}
    for pod in pods:
        prefix = nodes[pod.spec.node_name].rsplit(".", 2)[0]
        assert pod.status.pod_ip.startswith(prefix + ".")
        assert not pod.status.pod_ip.endswith(".1")
    ports = subprocess.run(
        ["ovs-vsctl", f"--db=unix:{antrea_lab.ovs_dirs('node1')}/run/db.sock",
         "--columns=name,external_ids", "find", "Interface",
         "external_ids:antrea-type=container"], capture_output=True, text=True,
        check=True).stdout
    assert "pod-name=a1," in ports and "pod-name=a2," in ports
    assert "pod-name=b1," not in ports
    endpoints = probe.pod_endpoints(antrea_lab, pods)
    for proto in ("tcp", "udp"):
        # 3 s lets TCP retransmit once: right after start-up a first packet is sometimes
        # lost (about 1 run in 5 at 1 s; known issue, see the closing note of issue 4).
        matrix = probe.probe_matrix(endpoints, proto=proto, port=80, timeout=3)
        assert matrix.all_reachable(), matrix.render() + f"\n{matrix.errors}"
    assert by_name["b1"].spec.node_name == "node2"


def test_a_node_reaches_pods_on_another_node_through_its_gateway(antrea_lab):
    api = client.CoreV1Api(cluster.kube_client(antrea_lab))
    pod = api.read_namespaced_pod("b1", "e2e")
    out = subprocess.run(
        ["ip", "netns", "exec", antrea_lab.netns("node1"), sys.executable, "-m",
         "antrea_lab.workload", "probe", "--proto", "tcp", "--timeout", "1",
         f"{pod.status.pod_ip}:80"], capture_output=True, text=True, check=True).stdout
    assert '"ok": true' in out, out


PEER_ECHO = """
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8080)); srv.listen(); print("ready", flush=True)
for _ in range(1):
    conn, peer = srv.accept(); conn.sendall(peer[0].encode()); conn.close()
"""

CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 8080), timeout=3); print(s.recv(100).decode())
"""


def test_pod_traffic_to_the_outside_is_masqueraded_to_the_node_ip(antrea_lab):
    api = client.CoreV1Api(cluster.kube_client(antrea_lab))
    pod = api.read_namespaced_pod("a1", "e2e")
    server = subprocess.Popen(
        ["ip", "netns", "exec", antrea_lab.netns("external"), sys.executable, "-c", PEER_ECHO],
        stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        seen = subprocess.run(
            ["ip", "netns", "exec", antrea_lab.pod_netns(pod.metadata.uid), sys.executable,
             "-c", CLIENT, "192.168.77.254"], capture_output=True, text=True, timeout=30)
        assert seen.returncode == 0, seen.stderr
        assert seen.stdout.strip() == "192.168.77.11"  # node1's IP, not the pod's
    finally:
        server.kill()
        server.wait()


def test_pod_to_pod_across_nodes_keeps_the_pod_ip(antrea_lab):
    api = client.CoreV1Api(cluster.kube_client(antrea_lab))
    a1, b1 = (api.read_namespaced_pod(n, "e2e") for n in ("a1", "b1"))
    server = subprocess.Popen(
        ["ip", "netns", "exec", antrea_lab.pod_netns(b1.metadata.uid), sys.executable, "-c",
         PEER_ECHO], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        seen = subprocess.run(
            ["ip", "netns", "exec", antrea_lab.pod_netns(a1.metadata.uid), sys.executable,
             "-c", CLIENT, b1.status.pod_ip], capture_output=True, text=True, timeout=30)
        assert seen.stdout.strip() == a1.status.pod_ip, seen.stderr
    finally:
        server.kill()
        server.wait()


def test_a_tcp_stream_across_nodes_survives_killing_and_restarting_both_agents(antrea_lab):
    api = client.CoreV1Api(cluster.kube_client(antrea_lab))
    api.create_namespaced_pod("e2e", {
        "metadata": {"name": "iperf-server"},
        "spec": {"nodeName": "node2", "containers": [
            {"name": "iperf3", "image": "iperf3", "command": ["iperf3", "-s", "-p", "5201"]}]}})
    deadline = time.monotonic() + 60
    server = api.read_namespaced_pod("iperf-server", "e2e")
    while not (server.status.phase == "Running" and server.status.pod_ip):
        assert time.monotonic() < deadline, "iperf3 server pod not running"
        time.sleep(0.3)
        server = api.read_namespaced_pod("iperf-server", "e2e")
    a1 = api.read_namespaced_pod("a1", "e2e")
    time.sleep(1)  # iperf3 -s listening
    stream = subprocess.Popen(
        ["ip", "netns", "exec", antrea_lab.pod_netns(a1.metadata.uid), "iperf3", "-c",
         server.status.pod_ip, "-p", "5201", "-t", "10", "-i", "1", "-J"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    cluster.restart(antrea_lab, "node1-antrea-agent", kill=True)
    time.sleep(2)
    cluster.restart(antrea_lab, "node2-antrea-agent", kill=True)
    out, err = stream.communicate(timeout=60)
    assert stream.returncode == 0, err + out[-500:]
    report = json.loads(out)
    intervals = [i["sum"]["bytes"] for i in report["intervals"]]
    assert len(intervals) >= 10 and all(b > 0 for b in intervals), intervals
    assert report["end"]["sum_received"]["bytes"] > 0
