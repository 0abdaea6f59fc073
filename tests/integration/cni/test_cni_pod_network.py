"""antrea-cni executed exactly as kubelet would (the lab's CNIExecutor), against the agent's
CNI server with a handler built from the real IPAM and pod-interface code.

Everything happens in namespaces created here: a "node" netns holding a Linux bridge with
the pod gateway addresses (standing in for br-int/antrea-gw0) and one netns per pod.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from antrea_core.agent.cniserver.errors import (
    CHECK_FAILURE,
    INTERFACE_FAILURE,
    IPAM_FAILURE,
    UNKNOWN_CONTAINER,
    CNIError,
)
from antrea_core.agent.cniserver.server import CNIServer
from antrea_core.agent.ipam.allocator import IPAMError, NodeIPAM
from antrea_core.agent.podnet import ethtool
from antrea_core.agent.podnet.interface import (
    PodInterfaces,
    PodInterfaceSpec,
    PodNetError,
    host_interface_name,
)
from antrea_core.agent.podnet.netns import socket_in_netns
from antrea_core.plugins.context import CNIRequest
from antrea_lab.node.cni_exec import Attachment, CNIExecutor
from antrea_lab.node.cni_exec import CNIError as ExecError

pytestmark = pytest.mark.integration

PREFIX = f"antrea-h9-{os.getpid() % 100000}"
POD_CIDRS = ["10.99.0.0/24", "fd00:99::/64"]
GATEWAYS = ["10.99.0.1", "fd00:99::1"]
MTU = 1450
CNI_BIN = Path(sys.executable).parent / "antrea-cni"


def netns_path(name: str) -> str:
    return f"/run/netns/{name}"


@contextlib.contextmanager
def iproute_in(name: str):
    ipr = IPRoute(use_socket=socket_in_netns(netns_path(name), socket.AF_NETLINK,
                                             socket.SOCK_DGRAM, 0))
    try:
        yield ipr
    finally:
        ipr.close()


class PodNetworkHandler:
    """The smallest real handler: IPAM + veth, host side plugged into the node's bridge."""

    def __init__(self, ipam: NodeIPAM, interfaces: PodInterfaces, node_ns: str,
                 bridge: str) -> None:
        self.ipam = ipam
        self.interfaces = interfaces
        self.node_ns = node_ns
        self.bridge = bridge

    def _spec(self, req: CNIRequest, ips) -> PodInterfaceSpec:
        host = host_interface_name(req.args.get("K8S_POD_NAMESPACE", ""),
                                   req.args.get("K8S_POD_NAME", req.container_id))
        return PodInterfaceSpec(container_id=req.container_id, netns=req.netns,
                                ifname=req.ifname, host_ifname=host, ips=ips, mtu=MTU,
                                disable_tx_checksum=True)

    def add(self, req: CNIRequest) -> dict:
        owner = f"{req.args.get('K8S_POD_NAMESPACE')}/{req.args.get('K8S_POD_NAME')}"
        try:
            allocation = self.ipam.allocate(req.container_id, req.ifname, owner)
        except IPAMError as exc:
            raise CNIError(IPAM_FAILURE, "IP allocation failed", str(exc)) from None
        try:
            iface = self.interfaces.setup(self._spec(req, allocation.ips))
            with iproute_in(self.node_ns) as ipr:
                master = ipr.link_lookup(ifname=self.bridge)[0]
                ipr.link("set", index=iface.host_index, master=master)
        except PodNetError as exc:
            self.ipam.release(req.container_id, req.ifname)
            raise CNIError(INTERFACE_FAILURE, "pod interface setup failed", str(exc)) from None
        return iface.cni_result()

    def check(self, req: CNIRequest) -> None:
        allocation = self.ipam.get(req.container_id, req.ifname)
        if allocation is None:
            raise CNIError(UNKNOWN_CONTAINER, f"unknown container {req.container_id}")
        try:
            self.interfaces.check(self._spec(req, allocation.ips))
        except PodNetError as exc:
            raise CNIError(CHECK_FAILURE, "pod interface check failed", str(exc)) from None

    def delete(self, req: CNIRequest) -> None:
        spec = self._spec(req, ())
        self.interfaces.teardown(spec.host_ifname, container_id=req.container_id,
                                 netns=req.netns, ifname=req.ifname)
        self.ipam.release(req.container_id, req.ifname)


@pytest.fixture
def node(tmp_path: Path):
    created: list[str] = []

    def new_ns(suffix: str) -> str:
        name = f"{PREFIX}-{suffix}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        created.append(name)
        return name

    node_ns = new_ns("node")
    with iproute_in(node_ns) as ipr:
        ipr.link("add", ifname="br-h9", kind="bridge")
        index = ipr.link_lookup(ifname="br-h9")[0]
        ipr.addr("add", index=index, address=GATEWAYS[0], prefixlen=24)
        ipr.addr("add", index=index, address=GATEWAYS[1], prefixlen=64, flags=0x02)
        ipr.link("set", index=index, state="up")
        lo = ipr.link_lookup(ifname="lo")[0]
        ipr.link("set", index=lo, state="up")

    ipam = NodeIPAM(POD_CIDRS, tmp_path / "ipam")
    handler = PodNetworkHandler(ipam, PodInterfaces(netns_path(node_ns)), node_ns, "br-h9")
    sock = tmp_path / "run" / "cni.sock"
    server = CNIServer(sock, handler)
    server.start()

    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-antrea.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "antrea",
        "plugins": [{"type": "antrea", "cniSocket": str(sock), "connectTimeout": 2}],
    }))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "antrea").symlink_to(CNI_BIN)
    executor = CNIExecutor(conf_dir, [bin_dir], tmp_path / "cache", timeout=30)
    yield {"executor": executor, "server": server, "ipam": ipam, "node_ns": node_ns,
           "new_ns": new_ns}
    server.stop(grace=0)
    for name in reversed(created):
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def attachment(node, i: int) -> Attachment:
    ns = node["new_ns"](f"p{i}")
    return Attachment(container_id=f"sandbox{i:04d}", netns=netns_path(ns),
                      pod_namespace="default", pod_name=f"web-{i}", pod_uid=f"uid-{i}")


def link_state(ns: str, ifname: str) -> dict | None:
    out = subprocess.run(["ip", "-j", "-d", "-n", ns, "addr", "show"], capture_output=True,
                         text=True, check=True).stdout
    return next((link for link in json.loads(out) if link["ifname"] == ifname), None)


def default_routes(ns: str) -> set[str]:
    routes = set()
    for family in ("-4", "-6"):
        out = subprocess.run(["ip", "-j", family, "-n", ns, "route", "show", "default"],
                             capture_output=True, text=True, check=True).stdout
        routes |= {r.get("gateway", "") for r in json.loads(out)}
    return routes


def tcp_reaches_gateway(node_ns: str, pod_ns: str, gateway: str, source: str) -> bool:
    family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
    server = socket_in_netns(netns_path(node_ns), family, socket.SOCK_STREAM)
    client = socket_in_netns(netns_path(pod_ns), family, socket.SOCK_STREAM)
    with server, client:
        server.bind((gateway, 0))
        server.listen(1)
        client.settimeout(3)
        client.connect(server.getsockname()[:2])
        conn, peer = server.accept()
        conn.close()
        return peer[0] == source


def test_add_check_del_through_the_cni_executor_set_up_and_remove_the_pod_network(node):
    ex, ipam, node_ns = node["executor"], node["ipam"], node["node_ns"]
    att = attachment(node, 0)
    pod_ns = Path(att.netns).name

    result = ex.add(att)

    assert result["cniVersion"] == "1.0.0"
    assert [ip["address"] for ip in result["ips"]] == ["10.99.0.2/24", "fd00:99::2/64"]
    assert result["interfaces"][1]["sandbox"] == att.netns
    eth0 = link_state(pod_ns, "eth0")
    assert eth0 is not None and eth0["mtu"] == MTU and eth0["operstate"] == "UP"
    assert eth0["address"] == result["interfaces"][1]["mac"]
    addrs = {f"{a['local']}/{a['prefixlen']}" for a in eth0["addr_info"]}
    assert {"10.99.0.2/24", "fd00:99::2/64"} <= addrs
    assert default_routes(pod_ns) == set(GATEWAYS)
    with socket_in_netns(att.netns, socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert ethtool.tx_checksum(s, "eth0") is False
    host = link_state(node_ns, result["interfaces"][0]["name"])
    assert host is not None and host.get("master") == "br-h9"
    assert tcp_reaches_gateway(node_ns, pod_ns, GATEWAYS[0], "10.99.0.2")
    assert tcp_reaches_gateway(node_ns, pod_ns, GATEWAYS[1], "fd00:99::2")

    ex.check(att)
    subprocess.run(["ip", "-n", pod_ns, "link", "set", "eth0", "mtu", "1500"], check=True)
    with pytest.raises(ExecError) as info:
        ex.check(att)
    assert info.value.code == CHECK_FAILURE and "MTU 1500" in info.value.details

    ex.delete(att)
    assert link_state(pod_ns, "eth0") is None
    assert link_state(node_ns, result["interfaces"][0]["name"]) is None
    assert ipam.get(att.container_id, "eth0") is None
    ex.delete(att)  # a repeated DEL finds nothing to release and still succeeds


def test_add_of_a_missing_netns_fails_with_interface_error_and_releases_its_ip(node):
    ex, ipam = node["executor"], node["ipam"]
    att = Attachment(container_id="gone1", netns=netns_path(f"{PREFIX}-absent"),
                     pod_namespace="default", pod_name="ghost")
    with pytest.raises(ExecError) as info:
        ex.add(att)
    assert info.value.code == INTERFACE_FAILURE and "does not exist" in info.value.details
    assert ipam.allocations() == []


def test_agent_down_add_answers_code_11_within_the_deadline(node):
    ex = node["executor"]
    node["server"].stop(grace=0)
    att = attachment(node, 1)
    started = time.monotonic()
    with pytest.raises(ExecError) as info:
        ex.add(att)
    elapsed = time.monotonic() - started
    assert info.value.code == 11 and "unreachable" in info.value.msg
    assert elapsed < 2 + 1.5, elapsed  # connectTimeout 2 s in the conflist


def test_fifty_adds_get_distinct_ips_and_latency_is_reported(node):
    ex, ipam = node["executor"], node["ipam"]
    atts = [attachment(node, i) for i in range(50)]
    latencies = []
    for att in atts:
        started = time.perf_counter()
        ex.add(att)
        latencies.append((time.perf_counter() - started) * 1000)
    ips = {a.ips[0].address for a in ipam.allocations()}
    assert len(ips) == 50
    q = statistics.quantiles(latencies, n=100)
    print(f"\nCNI ADD via CNIExecutor+antrea-cni (50 pods, dual-stack): "
          f"p50={statistics.median(latencies):.0f} ms p99={q[98]:.0f} ms "
          f"max={max(latencies):.0f} ms")
    started = time.perf_counter()
    for att in atts:
        ex.delete(att)
    print(f"CNI DEL x50: {(time.perf_counter() - started) * 1000 / 50:.0f} ms each")
    assert ipam.allocations() == []


def test_netns_given_as_a_process_path_works_like_a_named_one(node):
    ex = node["executor"]
    ns = node["new_ns"]("proc")
    holder = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"])
    try:
        for _ in range(50):  # wait until the child has entered the netns
            target = os.readlink(f"/proc/{holder.pid}/ns/net")
            if target == os.readlink(f"/proc/{os.getpid()}/ns/net"):
                time.sleep(0.02)
                continue
            break
        att = Attachment(container_id="procns1", netns=f"/proc/{holder.pid}/ns/net",
                         pod_namespace="default", pod_name="by-pid")
        result = ex.add(att)
        assert result["interfaces"][1]["sandbox"] == att.netns
        eth0 = link_state(ns, "eth0")
        assert eth0 is not None and eth0["mtu"] == MTU
        ex.check(att)
        ex.delete(att)
        assert link_state(ns, "eth0") is None
    finally:
        holder.kill()
        holder.wait()
