"""NetworkPolicy realization: flow count of one rule and realization time.

Run:  .venv/bin/python bench/policy_flows.py [--peers 10000] [--ovs]
Prints: a table of the IngressRule flows of one rule with N peers x M ports x K local
pods (conjunction: N + M + K + 1, against N*M*K without it); then, for one rule with
`--peers` peers, the time to compute its flows, to encode them as OpenFlow, to apply a
group patch adding one peer, and with `--ovs` (root) to install them into a sandboxed
userspace OVS in one bundle (netns and OVS prefixed hD-bench, removed afterwards).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from antrea_core.agent.networkpolicy.controller import NetworkPolicyController
from antrea_core.agent.openflow.bridge_client import OFBridge
from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    Direction,
    EventType,
    GroupMember,
    GroupPatch,
    L4Protocol,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyRule,
    ObjectKind,
    PodReference,
    PolicyReference,
    PolicyType,
    Service,
    WatchEvent,
)
from antrea_core.plugins.context import PodInterface

NODE = "node-a"
LAYOUT = PipelineLayout.build(core_tables())


def peer(i: int) -> GroupMember:
    return GroupMember(PodReference("clients", f"c{i}"),
                       (f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}",), "node-b")


def local_pod(i: int) -> PodInterface:
    return PodInterface("web", f"w{i}", f"cid{i}", f"veth{i}", (f"10.10.{i // 250}.{i % 250 + 2}",),
                        "02:00:00:00:00:01", 10 + i)


def scenario(ctl: NetworkPolicyController, n: int, m: int, k: int) -> None:
    pods = [local_pod(i) for i in range(k)]
    for pod in pods:
        ctl.pod_added(pod)
    rule = NetworkPolicyRule(Direction.IN, NetworkPolicyPeer(("clients",)),
                             tuple(Service(L4Protocol.TCP, 8000 + j) for j in range(m)))
    policy = NetworkPolicy("p", PolicyReference("K8sNetworkPolicy", "web", "p", "p"),
                           (rule,), ("web",), (PolicyType.INGRESS,))
    ctl.replace_all(
        [policy],
        [AppliedToGroup("web", frozenset(GroupMember(PodReference("web", p.name), p.ips, NODE)
                                         for p in pods))],
        [AddressGroup("clients", frozenset(peer(i) for i in range(n)))])


def rule_flow_count(n: int, m: int, k: int) -> int:
    ctl = NetworkPolicyController(NODE, None)
    scenario(ctl, n, m, k)
    return sum(1 for f in ctl.flows() if f.table == "IngressRule")


def grid() -> None:
    print("IngressRule flows of one rule (N peers x M ports x K local pods)")
    print(f"{'N':>6} {'M':>4} {'K':>4} {'flows':>7} {'N+M+K+1':>8} {'N*M*K':>9}")
    for n in (1, 10, 100, 1000):
        for m in (1, 5, 20):
            for k in (1, 10):
                flows = rule_flow_count(n, m, k)
                print(f"{n:>6} {m:>4} {k:>4} {flows:>7} {n + m + k + 1:>8} {n * m * k:>9}")


class _NoConn:
    def bundle(self, msgs, describe=None) -> None:
        pass


def timings(peers: int, ovs: bool) -> None:
    print(f"\none rule, {peers} peers x 3 ports x 5 local pods")
    ctl = NetworkPolicyController(NODE, None)
    t0 = time.perf_counter()
    scenario(ctl, peers, 3, 5)
    compute = time.perf_counter() - t0
    flows = ctl.flows()
    of = OFBridge(LAYOUT, _NoConn())  # type: ignore[arg-type]
    t0 = time.perf_counter()
    msgs, _ = of.compile(flows, "network-policy")
    encode = time.perf_counter() - t0
    print(f"  flows: {len(flows)}  compute: {compute * 1000:.0f} ms  "
          f"encode: {encode * 1000:.0f} ms ({sum(len(m) for m in msgs) / 1e6:.1f} MB)")
    ctl.bridge = of
    t0 = time.perf_counter()
    ctl.apply(WatchEvent(EventType.MODIFIED, ObjectKind.ADDRESS_GROUP, "clients",
                         patch=GroupPatch(ObjectKind.ADDRESS_GROUP, "clients",
                                          frozenset({peer(peers + 1)}), frozenset())))
    print(f"  group patch adding one peer (recompute + encode 1 flow): "
          f"{(time.perf_counter() - t0) * 1000:.1f} ms")
    if ovs:
        install_into_ovs(flows)


def install_into_ovs(flows: list) -> None:
    from antrea_core.agent.openflow.connection import OFConnection
    from antrea_lab.node.ovs import NodeOVS

    base = Path(tempfile.mkdtemp(prefix="hDbench", dir="/tmp"))
    ns = f"hD-bench{os.getpid() % 10000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    node_ovs = NodeOVS(ns, base / "ovs")
    conn = None
    try:
        node_ovs.start()
        node_ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int",
                       "datapath_type=netdev", "protocols=OpenFlow15", "fail_mode=secure")
        conn = OFConnection(str(node_ovs.run_dir / "br-int.mgmt"), timeout=120)
        conn.start(timeout=10)
        of = OFBridge(LAYOUT, conn)
        t0 = time.perf_counter()
        of.replace_feature_flows("network-policy", flows)
        print(f"  install into OVS (one bundle, encode included): "
              f"{time.perf_counter() - t0:.2f} s")
    finally:
        if conn is not None:
            conn.close()
        node_ovs.stop()
        subprocess.run(["ip", "netns", "delete", ns], check=False)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10000)
    parser.add_argument("--ovs", action="store_true", help="also install into a real OVS")
    args = parser.parse_args()
    grid()
    timings(args.peers, args.ovs)


if __name__ == "__main__":
    main()
