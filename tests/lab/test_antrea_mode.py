"""A 3-node lab whose pods are networked by antrea-agent: veths on br-int, the OpenFlow
pipeline, and a tunnel between nodes over the userspace datapath — one lab per tunnel
type (Geneve, VXLAN, GRE), shared by this module's tests.

Pods: a1, a2 and s1 on node1, b1 on node2, c1 on node3. s1 is the one that misbehaves
(forged addresses); the other four form the connectivity matrices.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from waiting import wait_for

from antrea_lab import cluster, probe
from antrea_lab.labdir import LabDir
from antrea_lab.node import ovs, topology

pytestmark = pytest.mark.lab

NODES = 3
PLACEMENT = {"a1": "node1", "a2": "node1", "b1": "node2", "c1": "node3", "s1": "node1"}
MATRIX_PODS = ("a1", "a2", "b1", "c1")


@pytest.fixture(scope="module", params=["geneve", "vxlan", "gre"])
def antrea_lab(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDir]:
    tunnel = request.param
    lab = LabDir(f"{tunnel[:3]}{os.getpid() % 10000}",
                 root=tmp_path_factory.mktemp(f"antrea-lab-{tunnel}"))
    try:
        cluster.up(lab, NODES, cni="antrea",
                   progress=lambda m: print(m, file=sys.stderr),
                   agent_overrides={"tunnelType": tunnel})
        for node in lab.load().nodes:  # type: ignore[union-attr]
            port_type = ovs.vsctl(lab.ovs_dirs(node), "get", "Interface", "antrea-tun0", "type")
            assert port_type.strip() == tunnel
        _pods(lab, PLACEMENT)
        yield lab
    finally:
        cluster.down(lab, progress=lambda m: print(m, file=sys.stderr))


def _api(lab: LabDir) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.kube_client(lab))


def _pods(lab: LabDir, placement: dict[str, str]) -> list:
    api = _api(lab)
    api.create_namespace({"metadata": {"name": "e2e"}})
    for name, node in placement.items():
        api.create_namespaced_pod("e2e", {
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "echo", "ports": [
                {"containerPort": 80, "protocol": "TCP"},
                {"containerPort": 80, "protocol": "UDP"}]}]}})

    def running() -> list:
        pods = [p for p in api.list_namespaced_pod("e2e").items
                if p.metadata.name in placement and p.status.phase == "Running"
                and p.status.pod_ip]
        return pods if len(pods) == len(placement) else []
    return wait_for(running, 120, "pods running", every=0.3)


def _pod(lab: LabDir, name: str) -> client.V1Pod:
    return _api(lab).read_namespaced_pod(name, "e2e")


def _matrix_endpoints(lab: LabDir) -> list[probe.PodEndpoint]:
    pods = [p for p in _api(lab).list_namespaced_pod("e2e").items
            if p.metadata.name in MATRIX_PODS]
    endpoints = probe.pod_endpoints(lab, pods)
    assert len(endpoints) == len(MATRIX_PODS), endpoints
    return endpoints


def _assert_all_reachable(lab: LabDir, protos: tuple[str, ...], timeout: float) -> None:
    endpoints = _matrix_endpoints(lab)
    for proto in protos:
        matrix = probe.probe_matrix(endpoints, proto=proto, port=80, timeout=timeout)
        assert matrix.all_reachable(), matrix.render() + f"\n{matrix.errors}"


def _flow_count(lab: LabDir, node: str) -> int:
    out = ovs.ofctl(lab.ovs_dirs(node), "-O", "OpenFlow15", "dump-flows", "br-int")
    return sum(1 for line in out.splitlines() if "cookie=" in line)


def _tunnel_neighbours(lab: LabDir, node: str) -> set[str]:
    """IPs in the node's vswitchd tunnel neighbour cache (without expired entries)."""
    out = ovs.appctl(lab.ovs_dirs(node), "tnl/neigh/show")
    return {line.split()[0] for line in out.splitlines()[2:]
            if line.strip() and "STALE" not in line}


def test_every_node_resolves_its_tunnel_peers_before_any_pod_traffic(antrea_lab):
    # Runs first: no pod has sent anything across nodes yet. Without an entry vswitchd
    # drops the first packet it should encapsulate (it sends an ARP request instead).
    ips = {f"node{i}": topology.node_ip(i) for i in range(1, NODES + 1)}
    for node in ips:
        peers = {ip for n, ip in ips.items() if n != node}
        wait_for(lambda node=node, peers=peers: peers <= _tunnel_neighbours(antrea_lab, node),
                 10, f"{node}'s tunnel neighbour cache to hold {sorted(peers)}")


def test_pods_get_ports_on_br_int_and_reach_each_other_within_and_across_nodes(antrea_lab):
    api = _api(antrea_lab)
    pods = [p for p in api.list_namespaced_pod("e2e").items if p.metadata.name in PLACEMENT]
    # IPs come from each node's podCIDR, allocated by the agent's IPAM (gateway is .1).
    nodes = {n.metadata.name: n.spec.pod_cidr for n in api.list_node().items}
    assert len(nodes) == NODES
    for pod in pods:
        assert pod.spec.node_name == PLACEMENT[pod.metadata.name]
        prefix = nodes[pod.spec.node_name].rsplit(".", 2)[0]
        assert pod.status.pod_ip.startswith(prefix + ".")
        assert not pod.status.pod_ip.endswith(".1")
    ports = ovs.vsctl(antrea_lab.ovs_dirs("node1"), "--columns=name,external_ids", "find",
                      "Interface", "external_ids:antrea-type=container")
    assert "pod-name=a1," in ports and "pod-name=a2," in ports
    assert "pod-name=b1," not in ports and "pod-name=c1," not in ports
    # a1<->a2 is the same node; every other pair crosses a tunnel (node1, node2, node3).
    # 1 s probes: no first packet may be lost (TCP would only retransmit after 1 s).
    _assert_all_reachable(antrea_lab, ("tcp", "udp", "icmp"), timeout=1)


def test_a_node_reaches_pods_on_other_nodes_through_its_gateway(antrea_lab):
    for node, pod_name in (("node1", "b1"), ("node1", "c1"), ("node3", "a1")):
        pod = _pod(antrea_lab, pod_name)
        out = subprocess.run(
            ["ip", "netns", "exec", antrea_lab.netns(node), sys.executable, "-m",
             "antrea_lab.workload", "probe", "--proto", "tcp", "--timeout", "3",
             f"{pod.status.pod_ip}:80"], capture_output=True, text=True, check=True).stdout
        assert '"ok": true' in out, f"{node} -> {pod_name}: {out}"


PEER_ECHO = """
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8080)); srv.listen(); print("ready", flush=True)
for _ in range(int(sys.argv[1])):
    conn, peer = srv.accept(); conn.sendall(peer[0].encode()); conn.close()
"""

CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 8080), timeout=3); print(s.recv(100).decode())
"""


def _source_seen_by(lab: LabDir, server_netns: str, clients: list[tuple[str, str]]
                    ) -> list[str]:
    """Run a TCP server in `server_netns` that answers each client with the source IP it
    saw; `clients` are (netns, server address). Returns what each client read."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_netns, sys.executable, "-c", PEER_ECHO,
         str(len(clients))], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        seen = []
        for netns, address in clients:
            out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", CLIENT,
                                  address], capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            seen.append(out.stdout.strip())
        return seen
    finally:
        server.kill()
        server.wait()


def test_pod_traffic_to_the_outside_is_masqueraded_to_the_node_ip(antrea_lab):
    a1, c1 = _pod(antrea_lab, "a1"), _pod(antrea_lab, "c1")
    seen = _source_seen_by(antrea_lab, antrea_lab.netns("external"), [
        (antrea_lab.pod_netns(a1.metadata.uid), "192.168.77.254"),
        (antrea_lab.pod_netns(c1.metadata.uid), "192.168.77.254")])
    assert seen == ["192.168.77.11", "192.168.77.13"]  # node1's and node3's IPs


def test_pod_to_pod_across_nodes_keeps_the_pod_ip(antrea_lab):
    a1, b1, c1 = (_pod(antrea_lab, n) for n in ("a1", "b1", "c1"))
    seen = _source_seen_by(antrea_lab, antrea_lab.pod_netns(b1.metadata.uid), [
        (antrea_lab.pod_netns(a1.metadata.uid), b1.status.pod_ip),
        (antrea_lab.pod_netns(c1.metadata.uid), b1.status.pod_ip)])
    assert seen == [a1.status.pod_ip, c1.status.pod_ip]


INNER_SEGMENT = re.compile(r"(10\.244\.\d+\.\d+\.\d+ > 10\.244\.\d+\.\d+\.\d+: .*)")


def test_each_tunnelled_packet_crosses_the_underlay_once(antrea_lab):
    """Every encapsulated segment of a TCP transfer appears once on the wire (the node's
    kernel must not forward or re-inject a second copy of what OVS already sent)."""
    a1, b1 = _pod(antrea_lab, "a1"), _pod(antrea_lab, "b1")
    capture = subprocess.Popen(
        ["ip", "netns", "exec", antrea_lab.netns("underlay"), "tcpdump", "-l", "-n", "-v",
         "-i", "node2", "udp port 6081 or udp port 4789 or ip proto 47"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert capture.stderr is not None and "listening" in capture.stderr.readline()
        node1 = probe.PodEndpoint("", "node1", topology.node_ip(1), antrea_lab.netns("node1"))
        for source in (probe.pod_endpoints(antrea_lab, [a1])[0], node1):  # pod and host
            results = probe.probe_from(source, [f"{b1.status.pod_ip}:80"] * 5, "tcp", 3)
            assert all(ok for ok, _ in results.values()), (source, results)
        time.sleep(1)
    finally:
        capture.send_signal(signal.SIGINT)
        out, _ = capture.communicate(timeout=30)
    segments = [m[1] for m in map(INNER_SEGMENT.search, out.splitlines()) if m]
    assert len(segments) >= 20, out[-2000:]  # 10 connections: SYN, SYN-ACK, data, FIN …
    repeated = [seg for seg, n in collections.Counter(segments).items() if n > 1]
    assert not repeated, repeated


# -- spoofing: s1 sends with a forged source IP or MAC ----------------------------------

RECEIVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 9999))
s.settimeout(0.2); print("ready", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        data, peer = s.recvfrom(100)
    except TimeoutError:
        continue
    print(peer[0], data.decode(), flush=True)
    if data == b"done":
        break
"""

# argv: destination, "done" or "more", then SOURCE=TAG pairs: five datagrams per pair,
# then with "done" a "done" from the last source (a genuine one), ending the receiver.
SENDER = """
import socket, sys, time
dst, last, pairs = sys.argv[1], sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]]
for src, tag in pairs:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((src, 0))
    for _ in range(5):
        s.sendto(tag.encode(), (dst, 9999)); time.sleep(0.02)
time.sleep(0.2)
for _ in range(3 if last == "done" else 0):
    s.sendto(b"done", (dst, 9999)); time.sleep(0.1)
"""


def _ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "ip", *args], check=True,
                   capture_output=True, text=True)


def _received(lab: LabDir, receivers: list[str], phases: list[list[tuple[str, str]]],
              sender_netns: str, between: Callable[[], None] | None = None
              ) -> dict[str, list[str]]:
    """Start a UDP receiver in each pod of `receivers`; from `sender_netns` send five
    datagrams to each receiver per (source IP, tag) of each phase, calling `between`
    before the last phase (whose last source must get through: it ends the receivers).
    Returns per receiver the "source tag" lines it got."""
    pods = {name: _pod(lab, name) for name in receivers}
    procs = {name: subprocess.Popen(
        ["ip", "netns", "exec", lab.pod_netns(pod.metadata.uid), sys.executable, "-c",
         RECEIVER], stdout=subprocess.PIPE, text=True) for name, pod in pods.items()}
    try:
        for proc in procs.values():
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for index, phase in enumerate(phases):
            last = index == len(phases) - 1
            if last and between is not None:
                between()
            for pod in pods.values():
                subprocess.run(["ip", "netns", "exec", sender_netns, sys.executable, "-c",
                                SENDER, pod.status.pod_ip, "done" if last else "more",
                                *(f"{src}={tag}" for src, tag in phase)],
                               check=True, timeout=60)
        return {name: proc.communicate(timeout=90)[0].splitlines()
                for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def _pin_gateway_neighbour(lab: LabDir, pod: client.V1Pod) -> None:
    """A permanent ARP entry for the pod's gateway, so that what the pipeline sees is the
    forged IP packet itself (ARP from a forged address is dropped before it)."""
    gateway = pod.status.pod_ip.rsplit(".", 1)[0] + ".1"
    mac = subprocess.run(["ip", "netns", "exec", lab.netns(pod.spec.node_name), "cat",
                          "/sys/class/net/antrea-gw0/address"], capture_output=True,
                         text=True, check=True).stdout.strip()
    _ip(lab.pod_netns(pod.metadata.uid), "neigh", "replace", gateway, "lladdr", mac, "dev",
        "eth0", "nud", "permanent")


def test_a_pod_sending_from_a_forged_source_ip_is_dropped(antrea_lab):
    s1, a1 = _pod(antrea_lab, "s1"), _pod(antrea_lab, "a1")
    netns = antrea_lab.pod_netns(s1.metadata.uid)
    _pin_gateway_neighbour(antrea_lab, s1)
    # s1 impersonates a1, its neighbour on node1.
    _ip(netns, "addr", "add", f"{a1.status.pod_ip}/32", "dev", "eth0")
    try:
        got = _received(antrea_lab, ["a2", "b1"], [[
            (s1.status.pod_ip, "genuine"), (a1.status.pod_ip, "forged"),
            (s1.status.pod_ip, "genuine-again")]], netns)
    finally:
        _ip(netns, "addr", "del", f"{a1.status.pod_ip}/32", "dev", "eth0")
    for receiver in ("a2", "b1"):  # same node, across nodes
        lines = got[receiver]
        assert f"{s1.status.pod_ip} genuine" in lines, (receiver, lines)
        assert f"{s1.status.pod_ip} genuine-again" in lines, (receiver, lines)
        assert not [line for line in lines if "forged" in line], (receiver, lines)


def test_a_pod_sending_from_a_forged_source_mac_is_dropped(antrea_lab):
    s1 = _pod(antrea_lab, "s1")
    netns = antrea_lab.pod_netns(s1.metadata.uid)
    real_mac = subprocess.run(["ip", "netns", "exec", netns, "cat",
                               "/sys/class/net/eth0/address"], capture_output=True, text=True,
                              check=True).stdout.strip()

    def restore() -> None:
        _ip(netns, "link", "set", "eth0", "address", real_mac)
        _pin_gateway_neighbour(antrea_lab, s1)

    _ip(netns, "link", "set", "eth0", "address", "02:00:00:de:ad:01")
    try:
        _pin_gateway_neighbour(antrea_lab, s1)  # the MAC change flushed the neighbours
        got = _received(antrea_lab, ["a2", "b1"], [[(s1.status.pod_ip, "forged-mac")],
                                                  [(s1.status.pod_ip, "real-mac")]],
                        netns, between=restore)
    finally:
        restore()
    for receiver in ("a2", "b1"):
        lines = got[receiver]
        assert not [line for line in lines if "forged-mac" in line], (receiver, lines)
        assert f"{s1.status.pod_ip} real-mac" in lines, (receiver, lines)


# -- restarts ---------------------------------------------------------------------------

def test_the_agent_replays_its_flows_when_ovs_vswitchd_restarts(antrea_lab):
    agent_pid = antrea_lab.load().pids["node1-antrea-agent"]  # type: ignore[union-attr]
    before = _flow_count(antrea_lab, "node1")
    assert before > 20
    ovs.restart_lab_vswitchd(antrea_lab, "node1", kill=True)
    # The new vswitchd starts with empty tables; the agent reconnects and replays.
    wait_for(lambda: _flow_count(antrea_lab, "node1") == before, 60,
             f"node1 flow count back to {before}", every=0.5)
    # The same agent did it (it was not restarted), and pods reach each other again;
    # 1 s probes: after a replay no first packet may be lost.
    assert antrea_lab.load().pids["node1-antrea-agent"] == agent_pid  # type: ignore[union-attr]
    _assert_all_reachable(antrea_lab, ("tcp", "udp", "icmp"), timeout=1)
    assert _flow_count(antrea_lab, "node1") == before


def test_a_tcp_stream_across_nodes_survives_killing_and_restarting_both_agents(antrea_lab):
    api = _api(antrea_lab)
    api.create_namespaced_pod("e2e", {
        "metadata": {"name": "iperf-server"},
        "spec": {"nodeName": "node2", "containers": [
            {"name": "iperf3", "image": "iperf3", "command": ["iperf3", "-s", "-p", "5201"]}]}})

    server = wait_for(lambda: _running_pod(api, "iperf-server"), 60,
                      "iperf3 server pod running", every=0.3)
    a1 = _pod(antrea_lab, "a1")
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
    # The restarted agents serve again (the datapath alone kept the stream up): a new
    # pod on each restarted node is networked and reachable from a1.
    for name, node in (("late1", "node1"), ("late2", "node2")):
        api.create_namespaced_pod("e2e", {
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "echo",
                                                       "ports": [{"containerPort": 80}]}]}})
    late = [wait_for(lambda n=name: _running_pod(api, n), 60, f"{name} running", every=0.3)
            for name in ("late1", "late2")]
    targets = [f"{p.status.pod_ip}:80" for p in late]
    source = probe.pod_endpoints(antrea_lab, [a1])[0]
    # "Running" means the echo server's process started, not that it listens yet (a
    # busy machine takes a moment): a refused connection already proves the path, so
    # retry briefly until it answers.
    last: dict = {}

    def answered() -> bool:
        last.update(probe.probe_from(source, targets, "tcp", 3))
        return all(ok for ok, _ in last.values())

    deadline = time.monotonic() + 15
    while not answered():
        assert time.monotonic() < deadline, last
        time.sleep(0.5)


def _running_pod(api: client.CoreV1Api, name: str) -> client.V1Pod | None:
    pod = api.read_namespaced_pod(name, "e2e")
    return pod if pod.status.phase == "Running" and pod.status.pod_ip else None



def _probe_hostnames(lab: LabDir, pod: str, target: str, count: int) -> list[str | None]:
    netns = lab.pod_netns(_pod(lab, pod).metadata.uid)
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-m",
                          "antrea_lab.workload", "probe", "--proto", "tcp", "--hostname",
                          "--timeout", "3", *([target] * count)],
                         capture_output=True, text=True, timeout=60).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(rows) == count, out
    return [r.get("hostname") if r["ok"] else None for r in rows]


def test_cluster_ip_is_served_to_pods_on_every_node_with_proxy_all_off(antrea_lab):
    """The default mode (antreaProxy.proxyAll false, alongside kube-proxy): AntreaProxy
    serves ClusterIP traffic from pods; NodePorts from outside are left to kube-proxy,
    which this lab does not run."""
    api = _api(antrea_lab)
    for name in ("a1", "b1"):
        api.patch_namespaced_pod(name, "e2e", {"metadata": {"labels": {"svc": "echo"}}})
    api.create_namespaced_service("e2e", {"metadata": {"name": "echo"}, "spec": {
        "type": "NodePort", "selector": {"svc": "echo"},
        "ports": [{"port": 8080, "targetPort": 80, "protocol": "TCP"}]}})
    service = api.read_namespaced_service("echo", "e2e")
    target = f"{service.spec.cluster_ip}:8080"
    for client_pod in ("c1", "a2"):  # node3 (no endpoint), node1 (a1's node)
        def both_backends(pod: str = client_pod) -> list[str | None] | None:
            seen = _probe_hostnames(antrea_lab, pod, target, 10)
            return seen if None not in seen and set(seen) == {"a1", "b1"} else None
        wait_for(both_backends, 20, f"ClusterIP from {client_pod} to both backends")
    node_port = service.spec.ports[0].node_port
    node1_ip = topology.node_ip(1)
    reply = subprocess.run(["ip", "netns", "exec", antrea_lab.netns("external"),
                            sys.executable, "-m", "antrea_lab.workload", "probe", "--proto",
                            "tcp", "--timeout", "2", f"{node1_ip}:{node_port}"],
                           capture_output=True, text=True, timeout=60).stdout
    assert '"ok": false' in reply, reply
