"""The CNI executor with Debian's real bridge + host-local + portmap plugins."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from antrea_lab.node import bridge_cni, netns
from antrea_lab.node.cni_exec import Attachment, CNIError, CNIExecutor, pod_ips
from antrea_lab.node.sandbox import Sandbox

pytestmark = pytest.mark.integration

PREFIX = f"antrea-h4c{os.getpid() % 10000}"


@pytest.fixture
def node(tmp_path: Path):
    """A node netns (the plugins run inside it, as under a kubelet) and its CNI dirs."""
    name = f"{PREFIX}-node"
    created = [name]
    netns.ensure(name)
    conf_dir = tmp_path / "net.d"
    bridge_cni.install(conf_dir, ["10.244.7.0/24"], tmp_path / "ipam")
    ex = CNIExecutor(conf_dir, [Path("/usr/lib/cni")], tmp_path / "cache", timeout=30)
    yield name, ex, tmp_path, created
    for ns in created:
        netns.delete(ns)


def run_in_node(node_ns: str, fn):
    return netns.run_in(node_ns, fn)


def links(ns: str) -> list[str]:
    out = subprocess.run(["ip", "-j", "-n", ns, "link"], capture_output=True, text=True,
                         check=True).stdout
    return [link["ifname"] for link in json.loads(out)]


def test_two_pods_get_ips_reach_each_other_and_del_releases(node):
    node_ns, ex, tmp, created = node
    pods = []
    for i in range(2):
        sb = Sandbox(uid=f"uid-{i}", namespace="default", name=f"p{i}", dir=str(tmp / f"p{i}"),
                     netns=f"{PREFIX}-pod-{i}")
        created.append(sb.netns)
        sb.ensure_netns()
        att = Attachment(container_id=sb.sandbox_id, netns=sb.netns_path,
                         pod_namespace="default", pod_name=sb.name, pod_uid=sb.uid)
        result = run_in_node(node_ns, lambda att=att: ex.add(att))
        pods.append((sb, att, pod_ips(result)))
    (sb0, att0, ips0), (sb1, _att1, ips1) = pods
    assert ips0 != ips1
    assert all(ip.startswith("10.244.7.") for ip in ips0 + ips1)
    assert "eth0" in links(sb0.netns)
    assert "cni0" in links(node_ns)

    def listen():
        s = socket.socket()
        s.bind((ips1[0], 0))
        s.listen()
        return s

    server = netns.run_in(sb1.netns, listen)
    try:
        def connect():
            with socket.create_connection(server.getsockname(), timeout=2) as c:
                return c.getsockname()[0]

        assert netns.run_in(sb0.netns, connect) == ips0[0]
    finally:
        server.close()

    ipam = tmp / "ipam" / bridge_cni.NETWORK_NAME
    assert (ipam / ips0[0]).exists()
    run_in_node(node_ns, lambda: ex.check(att0))
    run_in_node(node_ns, lambda: ex.delete(att0))
    assert "eth0" not in links(sb0.netns)
    assert not (ipam / ips0[0]).exists()
    assert (ipam / ips1[0]).exists()
    assert ex.cache.find(att0.container_id) is None


def test_add_failure_surfaces_plugin_error(node):
    node_ns, ex, _, _ = node
    att = Attachment(container_id="c1", netns="/run/netns/does-not-exist-h4")
    with pytest.raises(CNIError) as info:
        run_in_node(node_ns, lambda: ex.add(att))
    assert info.value.plugin == "bridge"
    assert "does-not-exist-h4" in str(info.value)
