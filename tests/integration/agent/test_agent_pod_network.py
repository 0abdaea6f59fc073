"""The agent's pod-networking control path on a sandbox node, driven exactly as kubelet
drives it: CNIExecutor runs the installed 10-antrea.conflist (antrea-cni, then Debian's
portmap) from the installed bin dir."""

from __future__ import annotations

import json
import math
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from agent_sandbox import NODE_IP, Sandbox

from antrea_core.agent.cniserver.errors import INTERNAL_ERROR
from antrea_core.agent.podnet.interface import host_interface_name
from antrea_lab.node.cni_exec import CNIError as ExecError

pytestmark = pytest.mark.integration


def link(box: Sandbox, ns: str, name: str) -> dict | None:
    links = json.loads(box.ip(ns, "-j", "addr", "show"))
    return next((x for x in links if x["ifname"] == name), None)


def ovs_interface(box: Sandbox, name: str) -> dict | None:
    proc = box.ovs.vsctl("--format=json", "--columns=_uuid,ofport,external_ids", "find",
                         "Interface", f"name={name}")
    rows = json.loads(proc.stdout)["data"]
    if not rows:
        return None
    uuid, ofport, ids = rows[0]
    return {"uuid": uuid[1], "ofport": ofport, "external_ids": dict(ids[1])}


def br_int_ports(box: Sandbox) -> set[str]:
    return set(box.ovs.vsctl("list-ports", "br-int").stdout.split())


def addresses(iface: dict) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for a in iface["addr_info"]
            if a.get("scope") == "global"}


def test_add_restart_reconcile_and_del_through_kubelets_cni_path(sandbox: Sandbox):
    box = sandbox
    agent, flows = box.start_agent()

    # Start-up: CNI config and plugin installed, gateway up with the podCIDR gateways,
    # MTU from the underlay (1500) minus Geneve over IPv4 (50).
    conflist = json.loads((box.tmp / "net.d" / "10-antrea.conflist").read_text())
    assert [p["type"] for p in conflist["plugins"]] == ["antrea", "portmap"]
    assert (box.tmp / "bin" / "antrea").resolve().name == "antrea-cni"
    assert agent.pod_mtu == 1450
    gw = link(box, box.node_ns, "antrea-gw0")
    assert gw is not None and {"10.99.1.1/24", "fd00:99:1::1/64"} <= addresses(gw)
    assert {"antrea-gw0", "antrea-tun0"} <= br_int_ports(box)
    assert flows.runtime is not None and flows.runtime.node.ips == (NODE_IP,)
    assert flows.runtime.gateway.ofport == 2

    # ADD two pods.
    atts = [box.attachment(0), box.attachment(1)]
    for att in atts:
        box.create_pod(att.pod_name)
    results = [box.executor.add(att) for att in atts]
    hosts = [host_interface_name("default", a.pod_name) for a in atts]
    for i, (att, result, host) in enumerate(zip(atts, results, hosts, strict=True)):
        ips = [ip["address"] for ip in result["ips"]]
        assert ips == [f"10.99.1.{i + 2}/24", f"fd00:99:1::{i + 2}/64"]
        pod_ns = Path(att.netns).name
        eth0 = link(box, pod_ns, "eth0")
        assert eth0 is not None and eth0["mtu"] == 1450 and set(ips) <= addresses(eth0)
        iface = ovs_interface(box, host)
        assert iface is not None and host in br_int_ports(box)
        assert iface["external_ids"] == {
            "antrea-type": "container", "container-id": att.container_id,
            "pod-namespace": "default", "pod-name": att.pod_name,
            "ip-address": f"10.99.1.{i + 2},fd00:99:1::{i + 2}",
            "attached-mac": eth0["address"]}
        seen = flows.of("install")[att.pod_name]
        assert (seen.ofport, seen.mac, seen.interface_name) == \
            (iface["ofport"], eth0["address"], host)
        assert seen.ips == (f"10.99.1.{i + 2}", f"fd00:99:1::{i + 2}")
        box.executor.check(att)
    before = {h: (ovs_interface(box, h), link(box, box.node_ns, h)["ifindex"]) for h in hosts}

    # Restart: the store is rebuilt from OVSDB, nothing is re-created.
    agent.stop()
    agent, flows = box.start_agent()
    assert {c.pod_name for c in agent.store.containers()} == {"web-0", "web-1"}
    for h in hosts:
        assert (ovs_interface(box, h), link(box, box.node_ns, h)["ifindex"]) == before[h]
        assert agent.store.get(h).ofport == before[h][0]["ofport"]
    assert set(flows.of("install")) == {"web-0", "web-1"} and flows.synced == 1
    assert agent.reconciled is not None and agent.reconciled.removed_ports == []
    box.executor.check(atts[0])

    # web-1 is deleted from the API while the agent is down: released on start.
    agent.stop()
    box.core.delete_namespaced_pod("web-1", "default", grace_period_seconds=0)
    agent, flows = box.start_agent()
    assert hosts[1] not in br_int_ports(box) and ovs_interface(box, hosts[1]) is None
    assert link(box, box.node_ns, hosts[1]) is None
    assert link(box, Path(atts[1].netns).name, "eth0") is None
    assert [a.container_id for a in agent.ipam.allocations()] == [atts[0].container_id]
    assert set(flows.of("uninstall")) == {"web-1"} and set(flows.of("install")) == {"web-0"}
    assert (ovs_interface(box, hosts[0]), link(box, box.node_ns, hosts[0])["ifindex"]) == \
        before[hosts[0]]
    box.executor.delete(atts[1])  # kubelet's late DEL for it still succeeds

    # DEL removes port, veth and IP.
    box.executor.delete(atts[0])
    assert hosts[0] not in br_int_ports(box)
    assert link(box, box.node_ns, hosts[0]) is None
    assert link(box, Path(atts[0].netns).name, "eth0") is None
    assert agent.ipam.allocations() == [] and agent.store.containers() == []
    kind, pod = flows.events[-1]
    assert (kind, pod.name, pod.ofport) == ("uninstall", "web-0", before[hosts[0]][0]["ofport"])
    box.executor.delete(atts[0])  # idempotent


def test_add_failing_at_the_flow_step_leaves_no_port_veth_or_ip(sandbox: Sandbox):
    box = sandbox
    agent, flows = box.start_agent()
    flows.fail_for.add("web-7")
    att = box.attachment(7)

    with pytest.raises(ExecError) as info:
        box.executor.add(att)

    assert info.value.code == INTERNAL_ERROR
    assert info.value.msg == "CNI ADD failed at step pod flows"
    assert "injected flow failure for web-7" in info.value.details
    host = host_interface_name("default", "web-7")
    assert host not in br_int_ports(box) and ovs_interface(box, host) is None
    assert link(box, box.node_ns, host) is None
    assert link(box, Path(att.netns).name, "eth0") is None
    assert agent.ipam.allocations() == [] and agent.store.containers() == []

    flows.fail_for.clear()  # kubelet retries the sandbox: it now works
    result = box.executor.add(att)
    assert result["ips"][0]["address"].startswith("10.99.1.")
    box.executor.delete(att)


def test_cni_add_latency_through_the_real_antrea_cni_binary(sandbox: Sandbox):
    box = sandbox
    agent, flows = box.start_agent()
    atts = [box.attachment(i) for i in range(30)]
    # Agent-side time of each ADD (the rest is antrea-cni and portmap process start-up).
    inner: list[float] = []
    configurator = agent.configurator
    assert configurator is not None
    real_add = configurator.add

    def timed_inner(request):
        started = time.perf_counter()
        try:
            return real_add(request)
        finally:
            inner.append((time.perf_counter() - started) * 1000)

    configurator.add = timed_inner  # type: ignore[method-assign]

    def timed_add(att):
        started = time.perf_counter()
        box.executor.add(att)
        return (time.perf_counter() - started) * 1000

    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=10) as pool:
        latencies = list(pool.map(timed_add, atts))
    wall = time.perf_counter() - wall
    print(f"\nCNI ADD via CNIExecutor -> antrea-cni + portmap -> agent (OVS netdev, "
          f"dual-stack), 30 pods, 10 at a time: {summary(latencies)}, wall {wall:.1f} s; "
          f"agent side: {summary(inner)}")
    assert len(agent.store.containers()) == 30 and len(flows.of("install")) == 30
    assert len({a.ips[0].address for a in agent.ipam.allocations()}) == 30

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(box.executor.delete, atts))
    print(f"CNI DEL x30 (10 at a time): {time.perf_counter() - started:.1f} s")
    assert agent.store.containers() == [] and agent.ipam.allocations() == []
    assert br_int_ports(box) == {"antrea-gw0", "antrea-tun0"}

    one = box.attachment(99)
    inner.clear()
    sequential = [timed_add(one)]
    box.executor.delete(one)
    for i in range(100, 104):
        att = box.attachment(i)
        sequential.append(timed_add(att))
        box.executor.delete(att)
    print(f"CNI ADD one at a time (5 pods): {summary(sequential)}; agent side: "
          f"{summary(inner)}")


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[math.ceil(0.99 * len(ordered)) - 1]  # nearest rank
    return f"p50={statistics.median(values):.0f} ms p99={p99:.0f} ms max={ordered[-1]:.0f} ms"
