"""AntreaProxy in a whole lab (--cni antrea, 2 nodes, proxyAll on, one lab for the
module): Services reached from pods on every node, from the nodes and from the lab's
external netns, with endpoints on both nodes.

Probes use the lab workload (`antrea_lab.workload probe --hostname`): each answer names
the backend pod, so tests see where the Service sent every connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client

from antrea_lab import cluster
from antrea_lab.labdir import LabDir
from antrea_lab.node.topology import EXTERNAL_IP as OUTSIDE_IP  # the external netns

pytestmark = pytest.mark.lab

NS = "svc"
# Overridable so that parallel runs on one machine do not collide.
API_PORT = int(os.environ.get("ANTREA_TEST_PROXY_API_PORT", "46443"))
NODE_IPS = {"node1": "192.168.77.11", "node2": "192.168.77.12"}
EXTERNAL_IP = "192.168.77.100"  # spec.externalIPs of Service "web-ext"
CONVERGENCE_SECONDS = 2.0
BOTH = frozenset({"web-1", "web-2"})
SCTP_PORT = 7777  # every Service's SCTP port, to the pods' "diameter" port (3868)


@dataclass(frozen=True)
class Answer:
    ok: bool
    error: str | None
    hostname: str | None


def _pod(name: str, node: str, labels: dict[str, str] | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "echo", "ports": [
                {"name": "http", "containerPort": 80, "protocol": "TCP"},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                {"name": "diameter", "containerPort": 3868, "protocol": "SCTP"}]}]}}


def _service(name: str, selector: dict[str, str], **spec: object) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "selector": selector, **spec,
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                  {"name": "dns", "port": 5353, "targetPort": "dns", "protocol": "UDP"},
                  {"name": "sctp", "port": SCTP_PORT, "targetPort": "diameter",
                   "protocol": "SCTP"}]}}


class ProxyLab:
    def __init__(self, lab: LabDir) -> None:
        self.lab = lab
        self.api = client.CoreV1Api(cluster.kube_client(lab))
        self.discovery = client.DiscoveryV1Api(cluster.kube_client(lab))

    def wait_running(self, names: list[str], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = {p.metadata.name: p for p in self.api.list_namespaced_pod(NS).items}
            if all(n in pods and pods[n].status.phase == "Running" and pods[n].status.pod_ip
                   for n in names):
                return
            time.sleep(0.3)
        raise AssertionError(f"pods {names} not running")

    def cluster_ip(self, service: str) -> str:
        return self.api.read_namespaced_service(service, NS).spec.cluster_ip

    def slice_ips(self, service: str) -> set[str]:
        slices = self.discovery.list_namespaced_endpoint_slice(
            NS, label_selector=f"kubernetes.io/service-name={service}").items
        return {a for s in slices for e in (s.endpoints or [])
                if (e.conditions is None or e.conditions.ready is not False)
                for a in e.addresses}

    def probe(self, pod: str, proto: str, target: str, count: int = 1,
              timeout: float = 3) -> list[Answer]:
        """Probe from a pod, or from a netns of the lab ("@node1", "@external")."""
        if pod.startswith("@"):
            netns = self.lab.netns(pod[1:])
        else:
            netns = self.lab.pod_netns(self.api.read_namespaced_pod(pod, NS).metadata.uid)
        argv = ["ip", "netns", "exec", netns, sys.executable, "-m",
                "antrea_lab.workload", "probe", "--proto", proto, "--hostname",
                "--timeout", str(timeout), *([target] * count)]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert len(rows) == count, out
        return [Answer(r["ok"], r.get("error"), r.get("hostname")) for r in rows]

    def spread(self, pod: str, proto: str, target: str, backends: set[str] = BOTH,
               batch: int = 10, batches: int = 4) -> list[Answer]:
        """Probe in batches until every backend answered (at most `batches`): a fixed
        small count would see one backend only with probability 2^-(count-1), enough to
        fail a suite with dozens of such checks now and then."""
        answers: list[Answer] = []
        for _ in range(batches):
            answers += self.probe(pod, proto, target, count=batch)
            if {a.hostname for a in answers} >= backends:
                break
        return answers


@pytest.fixture(scope="module")
def plab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyLab]:
    lab = LabDir(f"hg{os.getpid() % 10000}", root=tmp_path_factory.mktemp("hg-proxy"))
    try:
        cluster.up(lab, 2, cni="antrea", api_port=API_PORT,
                   progress=lambda m: print(m, file=sys.stderr),
                   agent_overrides={"antreaProxy": {"proxyAll": True}})
        p = ProxyLab(lab)
        p.api.create_namespace({"metadata": {"name": NS}})
        for name, node, labels in (("web-1", "node1", {"app": "web"}),
                                   ("web-2", "node2", {"app": "web"}),
                                   ("client-1", "node1", None),
                                   ("client-2", "node2", None),
                                   ("grow-1", "node2", {"app": "grow"})):
            p.api.create_namespaced_pod(NS, _pod(name, node, labels))
        p.api.create_namespaced_service(NS, _service("web", {"app": "web"}))
        p.api.create_namespaced_service(NS, _service("empty", {"app": "nothing"}))
        p.api.create_namespaced_service(NS, _service(
            "sticky", {"app": "web"}, sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}}))
        p.api.create_namespaced_service(NS, _service("grow", {"app": "grow"}))
        p.api.create_namespaced_service(NS, _service("web-np", {"app": "web"},
                                                     type="NodePort"))
        p.api.create_namespaced_service(NS, _service(
            "web-local", {"app": "web"}, type="NodePort", externalTrafficPolicy="Local"))
        p.api.create_namespaced_service(NS, _service("web-itp", {"app": "web"},
                                                     internalTrafficPolicy="Local"))
        p.api.create_namespaced_service(NS, _service("web-ext", {"app": "web"},
                                                     externalIPs=[EXTERNAL_IP]))
        # The outside world reaches the external IP through node2 (as a router would).
        subprocess.run(["ip", "-n", lab.netns("external"), "route", "replace", EXTERNAL_IP,
                        "via", NODE_IPS["node2"]], check=True)
        p.wait_running(["web-1", "web-2", "client-1", "client-2", "grow-1"])
        deadline = time.monotonic() + 30
        while len(p.slice_ips("web")) < 2 or not p.slice_ips("grow"):
            assert time.monotonic() < deadline, "EndpointSlices not filled"
            time.sleep(0.3)
        time.sleep(1)  # the agents' watches
        yield p
    finally:
        cluster.down(lab, progress=lambda m: print(m, file=sys.stderr))


def test_cluster_ip_spreads_tcp_over_endpoints_on_both_nodes_from_pods_on_every_node(
        plab: ProxyLab):
    target = f"{plab.cluster_ip('web')}:80"
    for pod in ("client-1", "client-2"):
        answers = plab.spread(pod, "tcp", target)
        assert all(a.ok for a in answers), answers
        assert {a.hostname for a in answers} == BOTH, (pod, answers)


def test_cluster_ip_udp_port_with_a_named_target_port_from_pods_on_every_node(
        plab: ProxyLab):
    target = f"{plab.cluster_ip('web')}:5353"
    for pod in ("client-1", "client-2"):
        [answer] = plab.probe(pod, "udp", target)
        assert answer.ok and answer.hostname in ("web-1", "web-2"), (pod, answer)


def test_a_pod_reaches_itself_through_its_service(plab: ProxyLab):
    answers = plab.probe("web-1", "tcp", f"{plab.cluster_ip('web')}:80", count=8)
    assert all(a.ok for a in answers), answers
    assert "web-1" in {a.hostname for a in answers}  # the hairpin path was taken


def test_a_service_without_endpoints_rejects_tcp_and_udp_at_once(plab: ProxyLab):
    ip = plab.cluster_ip("empty")
    started = time.monotonic()
    [tcp] = plab.probe("client-1", "tcp", f"{ip}:80", timeout=5)
    [udp] = plab.probe("client-2", "udp", f"{ip}:5353", timeout=5)
    assert (tcp.ok, tcp.error) == (False, "connection refused")
    assert (udp.ok, udp.error) == (False, "connection refused")
    assert time.monotonic() - started < 8  # answered, not two 5 s timeouts


def test_client_ip_affinity_holds_across_many_connections(plab: ProxyLab):
    target = f"{plab.cluster_ip('sticky')}:80"
    for pod in ("client-1", "client-2"):
        # The first connection picks the endpoint; the affinity flow it leaves behind is
        # installed by OVS while the connection is set up, so connections racing with the
        # very first one may still be balanced. Every later one sticks.
        [first] = plab.probe(pod, "tcp", target)
        assert first.ok, first
        answers = plab.probe(pod, "tcp", target, count=20)
        assert all(a.ok for a in answers), answers
        assert {a.hostname for a in answers} == {first.hostname}, (pod, answers)


@pytest.mark.parametrize("node", ["@node1", "@node2"])
def test_cluster_ip_from_the_node_reaches_endpoints_on_both_nodes(plab: ProxyLab, node: str):
    """proxyAll replaces kube-proxy for the node's own processes too: ClusterIPs are
    routed into antrea-gw0."""
    answers = plab.spread(node, "tcp", f"{plab.cluster_ip('web')}:80")
    assert all(a.ok for a in answers), (node, answers)
    assert {a.hostname for a in answers} == BOTH, (node, answers)


HTTPS_GET_VERSION = """
import json, socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
with ctx.wrap_socket(socket.create_connection((sys.argv[1], 443), timeout=5)) as s:
    s.sendall(b"GET /version HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
print(json.loads(data.split(b"\\r\\n\\r\\n", 1)[1])["gitVersion"])
"""


@pytest.mark.parametrize("source", ["client-1", "@node1", "@node2"])
def test_the_kubernetes_service_reaches_the_api_server_on_the_host_network(
        plab: ProxyLab, source: str):
    """An endpoint outside the pod network: from pods the reply returns through the
    host's masquerade; from nodes OVS masquerades to the hairpin virtual IP so that the
    host sends the reply back through OVS."""
    if source.startswith("@"):
        netns = plab.lab.netns(source[1:])
    else:
        netns = plab.lab.pod_netns(plab.api.read_namespaced_pod(source, NS).metadata.uid)
    ip = plab.api.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c",
                           HTTPS_GET_VERSION, ip], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, (source, proc.stderr[-500:])
    assert proc.stdout.strip().startswith("v1."), proc.stdout


def _time_until(cond, timeout: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not cond():
        assert time.monotonic() - started < timeout, "condition never held"
    return time.monotonic() - started


def test_adding_and_removing_a_backend_converges_within_2s(plab: ProxyLab):
    target = f"{plab.cluster_ip('grow')}:80"
    plab.api.create_namespaced_pod(NS, _pod("grow-2", "node1", {"app": "grow"}))
    plab.wait_running(["grow-2"])
    ip2 = plab.api.read_namespaced_pod("grow-2", NS).status.pod_ip
    _time_until(lambda: ip2 in plab.slice_ips("grow"), 30)
    # From the EndpointSlice naming the new pod to a client being sent to it.
    added = _time_until(lambda: "grow-2" in {
        a.hostname for a in plab.probe("client-1", "tcp", target, count=8, timeout=1)}, 10)
    plab.api.delete_namespaced_pod("grow-2", NS)
    _time_until(lambda: ip2 not in plab.slice_ips("grow"), 30)
    removed = _time_until(lambda: all(
        a.ok and a.hostname == "grow-1"
        for a in plab.probe("client-2", "tcp", target, count=8, timeout=1)), 10)
    print(f"endpoint added -> used in {added:.2f}s; removed -> unused in {removed:.2f}s",
          file=sys.stderr)
    assert added <= CONVERGENCE_SECONDS and removed <= CONVERGENCE_SECONDS, (added, removed)


def test_sctp_cluster_ip_reaches_endpoints_from_pods_on_every_node_and_rejects_without(
        plab: ProxyLab):
    """The kernel here has no SCTP: the pods' workload answers SCTP INITs over raw
    sockets, so an answer proves the INIT reached an endpoint's port 3868 and its
    INIT-ACK came back from the Service's address and port with a valid CRC32c."""
    target = f"{plab.cluster_ip('web')}:{SCTP_PORT}"
    for pod in ("client-1", "client-2"):
        answers = plab.spread(pod, "sctp", target)
        assert all(a.ok for a in answers), (pod, answers)
        assert {a.hostname for a in answers} == BOTH, (pod, answers)
    [refused] = plab.probe("client-1", "sctp", f"{plab.cluster_ip('empty')}:{SCTP_PORT}")
    assert (refused.ok, refused.error) == (False, "connection refused")


@pytest.mark.parametrize("source", ["@external", "client-1", "@node1"])
def test_sctp_node_port_reaches_endpoints_through_either_node_ip(plab: ProxyLab, source: str):
    port = _node_port(plab, "web-np", "sctp")
    for node_ip in NODE_IPS.values():
        answers = plab.probe(source, "sctp", f"{node_ip}:{port}", count=3)
        assert all(a.ok and a.hostname in ("web-1", "web-2") for a in answers), (
            source, node_ip, answers)


def _node_port(plab: ProxyLab, service: str, name: str = "http") -> int:
    ports = plab.api.read_namespaced_service(service, NS).spec.ports
    return next(p.node_port for p in ports if p.name == name)


@pytest.mark.parametrize("source", ["@external", "client-1", "@node1"])
def test_node_port_reaches_endpoints_on_both_nodes_through_either_node_ip(
        plab: ProxyLab, source: str):
    http, dns = _node_port(plab, "web-np"), _node_port(plab, "web-np", "dns")
    seen = set()
    for node_ip in NODE_IPS.values():
        answers = plab.probe(source, "tcp", f"{node_ip}:{http}", count=8)
        assert all(a.ok for a in answers), (source, node_ip, answers)
        seen |= {a.hostname for a in answers}
        [udp] = plab.probe(source, "udp", f"{node_ip}:{dns}")
        assert udp.ok and udp.hostname in ("web-1", "web-2"), (source, node_ip, udp)
    assert seen == {"web-1", "web-2"}, source


def test_external_traffic_policy_local_serves_each_node_port_from_that_node(
        plab: ProxyLab):
    port = _node_port(plab, "web-local")
    for node, backend in (("node1", "web-1"), ("node2", "web-2")):
        answers = plab.probe("@external", "tcp", f"{NODE_IPS[node]}:{port}", count=6)
        assert all(a.ok and a.hostname == backend for a in answers), (node, answers)


@pytest.mark.parametrize("source", ["@external", "client-1", "client-2", "@node1"])
def test_external_ip_reaches_endpoints_on_both_nodes(plab: ProxyLab, source: str):
    answers = plab.spread(source, "tcp", f"{EXTERNAL_IP}:80")
    assert all(a.ok for a in answers), (source, answers)
    assert {a.hostname for a in answers} == BOTH, (source, answers)


def test_internal_traffic_policy_local_keeps_pod_traffic_on_its_node(plab: ProxyLab):
    target = f"{plab.cluster_ip('web-itp')}:80"
    for pod, backend in (("client-1", "web-1"), ("client-2", "web-2")):
        answers = plab.probe(pod, "tcp", target, count=8)
        assert all(a.ok and a.hostname == backend for a in answers), (pod, answers)


LB_IP = "192.168.77.101"  # status.loadBalancer.ingress of Service "web-lb"


@pytest.mark.parametrize("source", ["@external", "client-1", "client-2", "@node1"])
def test_load_balancer_ingress_ip_reaches_endpoints_on_both_nodes(plab: ProxyLab, source: str):
    if not any(s.metadata.name == "web-lb" for s in plab.api.list_namespaced_service(NS).items):
        plab.api.create_namespaced_service(NS, _service("web-lb", {"app": "web"},
                                                        type="LoadBalancer"))
        # What a load-balancer controller does once it has an address for the Service.
        plab.api.patch_namespaced_service_status(
            "web-lb", NS, {"status": {"loadBalancer": {"ingress": [{"ip": LB_IP}]}}})
        # The outside world reaches the LB address through node1 (as the balancer would).
        subprocess.run(["ip", "-n", plab.lab.netns("external"), "route", "replace", LB_IP,
                        "via", NODE_IPS["node1"]], check=True)
    deadline = time.monotonic() + 10
    while True:
        answers = plab.spread(source, "tcp", f"{LB_IP}:80")
        if all(a.ok for a in answers) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert all(a.ok for a in answers), (source, answers)
    assert {a.hostname for a in answers} == BOTH, (source, answers)


LB_RESTRICTED_IP = "192.168.77.102"  # Service "web-lb-src": loadBalancerSourceRanges


def test_load_balancer_source_ranges_admit_the_listed_source_only(plab: ProxyLab):
    svc = _service("web-lb-src", {"app": "web"}, type="LoadBalancer",
                   loadBalancerSourceRanges=[f"{OUTSIDE_IP}/32"])
    plab.api.create_namespaced_service(NS, svc)
    plab.api.patch_namespaced_service_status(
        "web-lb-src", NS, {"status": {"loadBalancer": {"ingress": [{"ip": LB_RESTRICTED_IP}]}}})
    subprocess.run(["ip", "-n", plab.lab.netns("external"), "route", "replace",
                    LB_RESTRICTED_IP, "via", NODE_IPS["node2"]], check=True)
    target = f"{LB_RESTRICTED_IP}:80"
    deadline = time.monotonic() + 10
    while not all(a.ok for a in plab.probe("@external", "tcp", target, count=4)):
        assert time.monotonic() < deadline, "the listed source never got through"
        time.sleep(0.5)
    # A pod is not in the ranges: dropped, as kube-proxy drops it.
    [blocked] = plab.probe("client-1", "tcp", target, timeout=2)
    assert (blocked.ok, blocked.error) == (False, "timeout"), blocked
    # The ranges restrict the LoadBalancer IP only: the ClusterIP still serves the pod.
    [cluster] = plab.probe("client-1", "tcp", f"{plab.cluster_ip('web-lb-src')}:80")
    assert cluster.ok, cluster


HEALTH_GET = """
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"""


def test_health_check_node_ports_report_each_nodes_local_endpoints(plab: ProxyLab):
    """What an external load balancer asks every node before sending it traffic for a
    LoadBalancer Service with externalTrafficPolicy Local."""
    for name, selector in (("web-hc", {"app": "web"}), ("none-hc", {"app": "nothing"})):
        plab.api.create_namespaced_service(NS, _service(
            name, selector, type="LoadBalancer", externalTrafficPolicy="Local"))
    ports = {name: plab.api.read_namespaced_service(name, NS).spec.health_check_node_port
             for name in ("web-hc", "none-hc")}
    assert all(ports.values()), ports
    want = {"web-hc": (200, 1), "none-hc": (503, 0)}
    for node_ip in NODE_IPS.values():
        for name, port in ports.items():
            deadline = time.monotonic() + 10
            while True:
                out = subprocess.run(
                    ["ip", "netns", "exec", plab.lab.netns("external"), sys.executable,
                     "-c", HEALTH_GET, f"http://{node_ip}:{port}/"],
                    capture_output=True, text=True, timeout=30).stdout
                status, _, body = out.partition(" ")
                if status.isdigit() or time.monotonic() > deadline:
                    break
                time.sleep(0.3)  # the agent has not opened the port yet
            answer = json.loads(body)
            assert (int(status), answer["localEndpoints"]) == want[name], (node_ip, name, out)
            assert answer["service"] == {"namespace": NS, "name": name}


ZONE_LABEL = "topology.kubernetes.io/zone"


def _label_node(plab: ProxyLab, node: str, zone: str | None) -> None:
    plab.api.patch_node(node, {"metadata": {"labels": {ZONE_LABEL: zone}}})


def test_topology_hints_keep_traffic_in_the_clients_zone(plab: ProxyLab):
    """A selector-less Service whose EndpointSlice carries zone hints (what the
    EndpointSlice controller writes for topology-aware routing): each node uses only
    the endpoints hinted for its zone, and all of them once it has no zone."""
    pods = {p.metadata.name: p for p in plab.api.list_namespaced_pod(NS).items}
    plab.api.create_namespaced_service(NS, {"metadata": {"name": "zoned"}, "spec": {
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
    plab.discovery.create_namespaced_endpoint_slice(NS, {
        "metadata": {"name": "zoned-1", "labels": {
            "kubernetes.io/service-name": "zoned",
            "endpointslice.kubernetes.io/managed-by": "tests.antrea.io"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": [pods[name].status.pod_ip], "nodeName": node,
                       "conditions": {"ready": True},
                       "hints": {"forZones": [{"name": zone}]}}
                      for name, node, zone in (("web-1", "node1", "zone-a"),
                                               ("web-2", "node2", "zone-b"))]})
    target = f"{plab.cluster_ip('zoned')}:80"
    try:
        _label_node(plab, "node1", "zone-a")
        _label_node(plab, "node2", "zone-b")
        for client, backend in (("client-1", "web-1"), ("client-2", "web-2")):
            _time_until(lambda c=client, b=backend: {
                a.hostname for a in plab.probe(c, "tcp", target, count=8)} == {b}, 10)
        _label_node(plab, "node1", None)  # node1 leaves its zone: every endpoint again
        _time_until(lambda: {a.hostname for a in plab.probe(
            "client-1", "tcp", target, count=12)} == {"web-1", "web-2"}, 10)
    finally:
        _label_node(plab, "node1", None)
        _label_node(plab, "node2", None)


def test_replies_reach_a_client_isolated_for_ingress_through_every_protocol(plab: ProxyLab):
    """A client pod whose ingress is denied still gets the answers of its own Service
    connections: TCP/UDP through conntrack, SCTP through the policy tables' own
    association tracking (the reply is translated back after they saw it)."""
    net = client.NetworkingV1Api(cluster.kube_client(plab.lab))
    net.create_namespaced_network_policy(NS, {
        "metadata": {"name": "client-1-no-ingress"},
        "spec": {"podSelector": {"matchLabels": {"role": "client-1"}},
                 "policyTypes": ["Ingress"]}})
    plab.api.patch_namespaced_pod("client-1", NS, {"metadata": {"labels": {"role": "client-1"}}})
    ip = plab.cluster_ip("web")
    try:
        # Isolated: a direct connection to client-1 is refused (policy in force) ...
        target = plab.api.read_namespaced_pod("client-1", NS).status.pod_ip
        _time_until(lambda: not plab.probe("client-2", "tcp", f"{target}:80",
                                           timeout=1)[0].ok, 10)
        # ... while its own Service connections get their answers, from both backends.
        for proto, port in (("tcp", 80), ("udp", 5353), ("sctp", SCTP_PORT)):
            answers = plab.spread("client-1", proto, f"{ip}:{port}")
            assert all(a.ok for a in answers), (proto, answers)
            assert {a.hostname for a in answers} == BOTH, (proto, answers)
    finally:
        net.delete_namespaced_network_policy("client-1-no-ingress", NS)
        plab.api.patch_namespaced_pod("client-1", NS, {"metadata": {"labels": {"role": None}}})
