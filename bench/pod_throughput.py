"""Pod-to-pod TCP throughput through Antrea's pipeline, next to bare OVS in the same run.

Run as root:  .venv/bin/python bench/pod_throughput.py [--seconds 5] [--rounds 3]
              [--tunnel geneve] [--ipsec]

Sets up four paths side by side, then measures them in alternating rounds (iperf3, one
TCP stream each) and reports the best round of each:
  1. bare OVS: two netns on one fresh netdev bridge whose only flow is ``actions=NORMAL``;
  2. bare OVS + tunnel: two such bridges, each in its own netns with its own vswitchd,
     joined by a plain userspace tunnel (the node IP on ``br-phy``, as in the lab);
  3. Antrea, same node: two pods on node1 of a 2-node `--cni antrea` lab;
  4. Antrea, across nodes: a pod on node1 to a pod on node2 (through the tunnel).
Every endpoint uses MTU 1450 and TX checksum offload off, as the lab's pods do, so the
rows differ only in the forwarding path. Prints Gbit/s and Antrea's ratio to bare OVS.
With ``--ipsec``, a second lab with ``trafficEncryptionMode: ipsec`` adds
  5. Antrea with IPsec, across nodes (pod MTU 1350: the ESP packet must fit), and its
     ratio to row 4.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client
from pyroute2 import NetNS

from antrea_core.agent.bridge.lifecycle import isolate_uplink
from antrea_lab import cluster
from antrea_lab.labdir import LabDir
from antrea_lab.node import netns
from antrea_lab.node.ovs import NodeOVS

MTU = 1450
IPERF_PORT = 5201


@dataclass
class Route:
    """One measured path: the netns the iperf3 client runs in and the address of an
    iperf3 server already listening."""

    label: str
    client_netns: str
    server_ip: str


def serve(stack: ExitStack, netns_name: str) -> None:
    """iperf3 -s in `netns_name` until the stack closes."""
    server = subprocess.Popen(["ip", "netns", "exec", netns_name, "iperf3", "-s", "-p",
                               str(IPERF_PORT)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def stop() -> None:
        server.kill()
        server.wait()
    stack.callback(stop)


def iperf_client(client_netns: str, server_ip: str, seconds: int) -> float:
    """Gbit/s received by the server (one TCP stream)."""
    deadline = time.monotonic() + 30
    while True:  # the server may need a moment to listen; a tunnel to resolve
        out = subprocess.run(["ip", "netns", "exec", client_netns, "iperf3", "-c", server_ip,
                              "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
                             capture_output=True, text=True, timeout=seconds + 60)
        report = json.loads(out.stdout or "{}")
        if "end" in report and "error" not in report:
            return report["end"]["sum_received"]["bits_per_second"] / 1e9
        if time.monotonic() > deadline:
            raise RuntimeError(f"iperf3 to {server_ip} failed: {report.get('error', out.stderr)}")
        time.sleep(0.5)


# -- bare OVS ------------------------------------------------------------------------------


@contextmanager
def namespaces(names: list[str]) -> Iterator[None]:
    try:
        for name in names:
            netns.ensure(name)
        yield
    finally:
        for name in names:
            netns.delete(name)


@contextmanager
def ovs_in(name: str, base: Path) -> Iterator[NodeOVS]:
    ovs = NodeOVS(name, base / name)
    try:
        ovs.start()
        yield ovs
    finally:
        ovs.stop()


def add_endpoint(ovs: NodeOVS, ovs_netns: str, bridge: str, endpoint: str, ip: str) -> None:
    """A veth from netns `endpoint` (eth0, `ip`/24, MTU 1450) into `bridge`."""
    port = f"{endpoint[-6:]}-p"
    with NetNS(ovs_netns) as ns:
        ns.link("add", ifname=port, kind="veth", peer={"ifname": "eth0", "net_ns_fd": endpoint})
        idx = ns.link_lookup(ifname=port)[0]
        ns.link("set", index=idx, mtu=MTU, state="up")
    with NetNS(endpoint) as ns:
        idx = ns.link_lookup(ifname="eth0")[0]
        ns.link("set", index=idx, mtu=MTU, state="up")
        ns.addr("add", index=idx, address=ip, prefixlen=24)
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
    netns.disable_tx_checksum(endpoint, "eth0")
    ovs.vsctl("add-port", bridge, port)


def normal_bridge(ovs: NodeOVS, bridge: str) -> None:
    ovs.vsctl("add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev")
    ovs.ofctl("del-flows", bridge)
    ovs.ofctl("add-flow", bridge, "actions=NORMAL")


def bare_one_bridge(stack: ExitStack, prefix: str, base: Path) -> Route:
    sw, a, b = f"{prefix}-sw", f"{prefix}-a", f"{prefix}-b"
    stack.enter_context(namespaces([sw, a, b]))
    ovs = stack.enter_context(ovs_in(sw, base))
    normal_bridge(ovs, "br0")
    add_endpoint(ovs, sw, "br0", a, "10.98.0.1")
    add_endpoint(ovs, sw, "br0", b, "10.98.0.2")
    serve(stack, b)
    return Route("bare OVS, one bridge, actions=NORMAL", a, "10.98.0.2")


def bare_tunnel(stack: ExitStack, prefix: str, base: Path, tunnel: str) -> Route:
    """Two vswitchds (netns n1, n2) whose br-int bridges are joined by a `tunnel` port;
    the underlay is a veth between the two netns, held by each side's br-phy."""
    n1, n2, a, b = f"{prefix}-n1", f"{prefix}-n2", f"{prefix}-ta", f"{prefix}-tb"
    stack.enter_context(namespaces([n1, n2, a, b]))
    with NetNS(n1) as ns:
        ns.link("add", ifname="uplink", kind="veth", peer={"ifname": "uplink",
                                                              "net_ns_fd": n2})
    nodes = [(n1, "172.31.0.1", "172.31.0.2", a, "10.99.0.1"),
             (n2, "172.31.0.2", "172.31.0.1", b, "10.99.0.2")]
    for name, local, remote, endpoint, ip in nodes:
        ovs = stack.enter_context(ovs_in(name, base))
        ovs.vsctl("add-br", "br-phy", "--", "set", "Bridge", "br-phy",
                  "datapath_type=netdev", "--", "add-port", "br-phy", "uplink")
        with NetNS(name) as ns:
            ns.link("set", index=ns.link_lookup(ifname="uplink")[0], state="up")
            phy = ns.link_lookup(ifname="br-phy")[0]
            ns.link("set", index=phy, state="up")
            ns.addr("add", index=phy, address=local, prefixlen=24)
        netns.disable_tx_checksum(name, "br-phy")
        isolate_uplink("uplink", name)  # the kernel would take the veth's copy too
        normal_bridge(ovs, "br-int")
        ovs.vsctl("add-port", "br-int", "tun0", "--", "set", "Interface", "tun0",
                  f"type={tunnel}", f"options:remote_ip={remote}")
        add_endpoint(ovs, name, "br-int", endpoint, ip)
    # Resolve the tunnel next hops before measuring (userspace tunnels drop until then).
    for name, _local, remote, _endpoint, _ip in nodes:
        netns.run_in(name, lambda remote=remote: _nudge(remote))
    serve(stack, b)
    return Route(f"bare OVS, two bridges + {tunnel} tunnel, NORMAL", a, "10.99.0.2")


def _nudge(ip: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"", (ip, 9))
    time.sleep(0.5)


# -- Antrea ---------------------------------------------------------------------------------


def antrea(stack: ExitStack, name: str, root: Path, tunnel: str, api_port: int | None,
           ipsec: bool = False) -> list[Route]:
    lab = LabDir(name, root=root)
    stack.callback(lambda: cluster.down(lab, progress=lambda _m: None))
    overrides = {"tunnelType": tunnel, **({"trafficEncryptionMode": "ipsec"} if ipsec else {})}
    cluster.up(lab, 2, cni="antrea", api_port=api_port, progress=lambda _m: None,
               agent_overrides=overrides)
    api = client.CoreV1Api(cluster.kube_client(lab))
    api.create_namespace({"metadata": {"name": "bench"}})
    placement = {"client": "node1", "local": "node1", "remote": "node2"}
    for pod, node in placement.items():
        command = (["sleep", "3600"] if pod == "client"
                   else ["iperf3", "-s", "-p", str(IPERF_PORT)])
        api.create_namespaced_pod("bench", {"metadata": {"name": pod}, "spec": {
            "nodeName": node, "containers": [{"name": "c", "image": "iperf3",
                                              "command": command}]}})
    deadline = time.monotonic() + 120
    while True:
        pods = {p.metadata.name: p for p in api.list_namespaced_pod("bench").items
                if p.status.phase == "Running" and p.status.pod_ip}
        if len(pods) == len(placement):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("bench pods not running after 120 s")
        time.sleep(0.3)
    client_ns = lab.pod_netns(pods["client"].metadata.uid)
    if ipsec:
        return [Route("Antrea pipeline, pod to pod, across nodes, IPsec", client_ns,
                      pods["remote"].status.pod_ip)]
    return [Route("Antrea pipeline, pod to pod, same node", client_ns,
                  pods["local"].status.pod_ip),
            Route(f"Antrea pipeline, pod to pod, across nodes ({tunnel})", client_ns,
                  pods["remote"].status.pod_ip)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per iperf3 run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tunnel", default="geneve", choices=("geneve", "vxlan", "gre"))
    parser.add_argument("--prefix", default=f"bt{os.getpid() % 1000}",
                        help="prefix of the netns and lab this run creates")
    parser.add_argument("--api-port", type=int, default=None, help="lab API port")
    parser.add_argument("--ipsec", action="store_true",
                        help="also measure across nodes with trafficEncryptionMode: ipsec")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (network namespaces, Open vSwitch)")
    with tempfile.TemporaryDirectory(prefix="antrea-bench-") as tmp, ExitStack() as stack:
        base = Path(tmp)
        paths = [bare_one_bridge(stack, args.prefix, base),
                 bare_tunnel(stack, args.prefix, base, args.tunnel),
                 *antrea(stack, args.prefix, base / "lab", args.tunnel, args.api_port)]
        if args.ipsec:
            paths += antrea(stack, f"{args.prefix}i", base / "lab-ipsec", args.tunnel, None,
                            ipsec=True)
        # Rounds alternate the paths, so a burst of load from elsewhere on this shared
        # machine hits all of them alike; the best of the rounds is reported.
        results: dict[str, list[float]] = {p.label: [] for p in paths}
        for _ in range(args.rounds):
            for p in paths:
                results[p.label].append(iperf_client(p.client_netns, p.server_ip,
                                                     args.seconds))
    best = {label: max(values) for label, values in results.items()}
    width = max(len(label) for label in best)
    print(f"iperf3 TCP, 1 stream, {args.seconds} s, best of {args.rounds} alternating "
          f"rounds, MTU {MTU}")
    for label, values in results.items():
        runs = " ".join(f"{v:.3f}" for v in values)
        print(f"  {label.ljust(width)}  {best[label]:6.3f} Gbit/s   (runs: {runs})")
    labels = [p.label for p in paths]
    print(f"  Antrea / bare, same node:    {best[labels[2]] / best[labels[0]]:.2f}")
    print(f"  Antrea / bare, across nodes: {best[labels[3]] / best[labels[1]]:.2f}")
    if args.ipsec:
        print(f"  IPsec / plaintext, across nodes: {best[labels[4]] / best[labels[3]]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
