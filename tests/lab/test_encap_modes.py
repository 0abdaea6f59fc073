"""trafficEncapMode noEncap and hybrid on 3-node labs, proven on the underlay.

- noEncap: all three nodes on one subnet; every peer's podCIDR is routed by the host
  straight to the peer's IP, no tunnel port exists, pods get the underlay MTU.
- hybrid: node1 and node2 on 192.168.77.0/24, node3 on 192.168.78.0/24 behind the
  underlay's router (which knows nothing of pods): node1<->node2 is routed directly,
  anything to or from node3 goes through the Geneve tunnel.

Pods: a1 on node1, b1 on node2, c1 on node3 (TCP and UDP echo on port 80).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client
from waiting import wait_for, wait_until

from antrea_lab import cluster, probe
from antrea_lab.capture import capture
from antrea_lab.labdir import LabDir
from antrea_lab.node import ovs, topology

pytestmark = pytest.mark.lab

PLACEMENT = {"a1": "node1", "b1": "node2", "c1": "node3"}
GENEVE = "udp port 6081"
PEER_PORT = 8080
UNDERLAY_MTU = 1500
GENEVE_POD_MTU = 1450


@dataclass
class ModeLab:
    lab: LabDir
    mode: str
    core: client.CoreV1Api

    def pod(self, name: str) -> client.V1Pod:
        return self.core.read_namespaced_pod(name, "e2e")

    def node_ip(self, node: str) -> str:
        return topology.Topology.from_dict(self.lab.load().topology).node(node).ip

    def pod_cidr(self, node: str) -> str:
        return self.core.read_node(node).spec.pod_cidr

    def in_node(self, node: str, *argv: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.lab.netns(node), *argv],
                              capture_output=True, text=True, check=True).stdout

    def route(self, node: str, cidr: str) -> str:
        return self.in_node(node, "ip", "route", "show", cidr).strip()

    def tunnelled(self, a: str, b: str) -> bool:
        """What the mode should do between nodes a and b."""
        return self.mode == "hybrid" and "node3" in (a, b)

    def endpoint(self, name: str) -> probe.PodEndpoint:
        return probe.pod_endpoints(self.lab, [self.pod(name)])[0]


@pytest.fixture(scope="module", params=["noEncap", "hybrid"])
def mlab(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModeLab]:
    mode = request.param
    lab = LabDir(f"{mode[:2].lower()}{os.getpid() % 10000}",
                 root=tmp_path_factory.mktemp(f"antrea-lab-{mode}"))
    try:
        cluster.up(lab, len(PLACEMENT), cni="antrea",
                   progress=lambda m: print(m, file=sys.stderr),
                   agent_overrides={"trafficEncapMode": mode},
                   subnets=2 if mode == "hybrid" else 1)
        core = client.CoreV1Api(cluster.kube_client(lab))
        core.create_namespace({"metadata": {"name": "e2e"}})
        for name, node in PLACEMENT.items():
            core.create_namespaced_pod("e2e", {
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {"nodeName": node, "containers": [{
                    "name": "c", "image": "echo", "ports": [
                        {"containerPort": 80, "protocol": "TCP"},
                        {"containerPort": 80, "protocol": "UDP"}]}]}})
        wait_for(lambda: all(p.status.phase == "Running" and p.status.pod_ip
                             for p in core.list_namespaced_pod("e2e").items)
                 and len(core.list_namespaced_pod("e2e").items) == len(PLACEMENT),
                 120, "pods running", every=0.3)
        yield ModeLab(lab, mode, core)
    finally:
        cluster.down(lab, progress=lambda m: print(m, file=sys.stderr))


def test_each_peer_pod_cidr_is_routed_directly_or_through_the_tunnel_as_the_mode_says(
        mlab: ModeLab) -> None:
    for node in PLACEMENT.values():
        for peer in PLACEMENT.values():
            if peer == node:
                continue
            cidr = mlab.pod_cidr(peer)
            route = mlab.route(node, cidr)
            if mlab.tunnelled(node, peer):
                gateway = ipaddress.ip_network(cidr).network_address + 1
                assert f"via {gateway} dev antrea-gw0" in route and "onlink" in route, route
            else:
                assert f"via {mlab.node_ip(peer)} " in route, (node, peer, route)
                assert "antrea-gw0" not in route, route


def test_the_tunnel_port_exists_only_where_a_peer_may_be_tunnelled(mlab: ModeLab) -> None:
    for node in PLACEMENT.values():
        ports = ovs.vsctl(mlab.lab.ovs_dirs(node), "list-ports", "br-int").split()
        assert ("antrea-tun0" in ports) == (mlab.mode == "hybrid"), (node, ports)


def test_pods_get_the_underlay_mtu_unless_they_may_be_tunnelled(mlab: ModeLab) -> None:
    expected = GENEVE_POD_MTU if mlab.mode == "hybrid" else UNDERLAY_MTU
    for name in PLACEMENT:
        link = subprocess.run(["ip", "-n", mlab.lab.pod_netns(mlab.pod(name).metadata.uid),
                               "-j", "link", "show", "eth0"], capture_output=True, text=True,
                              check=True).stdout
        assert json.loads(link)[0]["mtu"] == expected, name


def test_every_pod_reaches_every_other_pod_over_tcp_udp_and_icmp(mlab: ModeLab) -> None:
    endpoints = [mlab.endpoint(name) for name in PLACEMENT]
    for proto in ("tcp", "udp", "icmp"):
        matrix = probe.probe_matrix(endpoints, proto=proto, port=80, timeout=2)
        assert matrix.all_reachable(), matrix.render() + f"\n{matrix.errors}"


def test_nodes_reach_pods_on_other_nodes(mlab: ModeLab) -> None:
    for node, pod_name in (("node1", "b1"), ("node1", "c1"), ("node3", "a1")):
        host = probe.PodEndpoint("", node, mlab.node_ip(node), mlab.lab.netns(node))
        results = probe.probe_from(host, [f"{mlab.pod(pod_name).status.pod_ip}:80"], "tcp", 3)
        assert all(ok for ok, _ in results.values()), (node, pod_name, results)


def test_the_underlay_carries_pod_addresses_between_directly_routed_nodes_and_geneve_otherwise(
        mlab: ModeLab) -> None:
    a1 = mlab.endpoint("a1")
    for target in ("b1", "c1"):
        ip = mlab.pod(target).status.pod_ip
        path = mlab.lab.path / f"underlay-{target}-{time.monotonic_ns()}.pcap"
        # The target node's end of the underlay: whatever reaches it from node1.
        with capture(mlab.lab.netns("underlay"), path, interface=PLACEMENT[target]) as pcap:
            for _ in range(3):
                results = probe.probe_from(a1, [f"{ip}:80"], "tcp", 3)
                assert all(ok for ok, _ in results.values()), results
        plain = pcap.count(f"host {a1.ip} and host {ip} and tcp port 80")
        tunnelled = pcap.count(GENEVE)
        if mlab.tunnelled("node1", PLACEMENT[target]):
            assert plain == 0 and tunnelled >= 15, (target, plain, tunnelled)
        else:
            assert plain >= 15 and tunnelled == 0, (target, plain, tunnelled)


def test_pod_to_pod_keeps_the_pod_ip_and_pod_to_outside_is_masqueraded(
        mlab: ModeLab) -> None:
    servers = {"b1": mlab.lab.pod_netns(mlab.pod("b1").metadata.uid),
               "external": mlab.lab.netns("external")}
    procs = []
    try:
        for netns in servers.values():
            proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-m",
                                     "antrea_lab.workload", "serve", "--tcp", str(PEER_PORT),
                                     "--name", "@peer"], stdout=subprocess.PIPE, text=True)
            procs.append(proc)
            assert proc.stdout is not None and json.loads(proc.stdout.readline())["listening"]
        b1_ip = mlab.pod("b1").status.pod_ip
        for client_pod in ("a1", "c1"):
            netns = mlab.lab.pod_netns(mlab.pod(client_pod).metadata.uid)
            assert probe.source_ip_seen(netns, b1_ip, PEER_PORT) == \
                mlab.pod(client_pod).status.pod_ip
            assert probe.source_ip_seen(netns, topology.EXTERNAL_IP, PEER_PORT) == \
                mlab.node_ip(PLACEMENT[client_pod])
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_a_network_policy_selects_peers_arriving_through_the_host_by_pod_label(
        mlab: ModeLab) -> None:
    """Directly routed traffic enters through antrea-gw0 with the pod's own address:
    policy still tells a1 (allowed) from c1 (not) at b1."""
    net = client.NetworkingV1Api(cluster.kube_client(mlab.lab))
    net.create_namespaced_network_policy("e2e", {
        "metadata": {"name": "b1-from-a1"},
        "spec": {"podSelector": {"matchLabels": {"app": "b1"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a1"}}}]}]}})
    b1 = f"{mlab.pod('b1').status.pod_ip}:80"

    def reaches(src: str) -> bool:
        return all(ok for ok, _ in probe.probe_from(mlab.endpoint(src), [b1], "tcp",
                                                    1).values())
    try:
        wait_until("c1 denied at b1", lambda: not reaches("c1"), 20)
        assert reaches("a1")
    finally:
        net.delete_namespaced_network_policy("b1-from-a1", "e2e")
    wait_until("c1 allowed again", lambda: reaches("c1"), 20)


def test_a_node_added_later_is_routed_by_the_mode_and_unrouted_when_deleted(
        mlab: ModeLab) -> None:
    """A Node object alone (no agent behind it) is enough to see node1's decision; in
    hybrid, moving it to node1's subnet switches it from the tunnel to a direct route."""
    cidr = "10.244.99.0/24"
    other_subnet = str(topology.subnet(1).network_address + 99)
    same_subnet = str(topology.subnet(0).network_address + 99)
    first = other_subnet if mlab.mode == "hybrid" else same_subnet
    mlab.core.create_node({"metadata": {"name": "node9"},
                           "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
                           "status": {"addresses": [{"type": "InternalIP", "address": first}]}})
    try:
        if mlab.mode == "hybrid":
            wait_until("node9 tunnelled", lambda: "via 10.244.99.1 dev antrea-gw0"
                       in mlab.route("node1", cidr), 20)
            assert cidr in _l3_flows(mlab, "node1")
            mlab.core.patch_node_status("node9", {"status": {"addresses": [
                {"type": "InternalIP", "address": same_subnet}]}})
        wait_until("node9 routed directly", lambda: f"via {same_subnet} "
                   in mlab.route("node1", cidr), 20)
        assert cidr not in _l3_flows(mlab, "node1")
    finally:
        mlab.core.delete_node("node9")
    wait_until("node9's route removed", lambda: mlab.route("node1", cidr) == "", 20)


def _l3_flows(mlab: ModeLab, node: str) -> str:
    out = ovs.ofctl(mlab.lab.ovs_dirs(node), "-O", "OpenFlow15", "dump-flows", "br-int")
    return "\n".join(line for line in out.splitlines() if "set_field" in line
                     and "tun_dst" in line)
