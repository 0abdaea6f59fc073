"""proxyAll: hand Service traffic that reaches the node's own stack to OVS.

Packets to <any local address>:<nodePort> arrive at the host (from the uplink, or from
the node's own processes). The host DNATs them to `NODEPORT_VIRTUAL_IP` (same port) in
the nat table, and routes that address into antrea-gw0 with a static neighbour entry, so
they enter the pipeline where ServiceLB picks an endpoint. The kernel's conntrack undoes
its DNAT on the replies, which OVS sends back through the gateway (the connection came
from it). Rules live in a chain of our own, rewritten whole on every change
(`iptables-restore --noflush`), as kube-proxy does.

ClusterIPs, external and LoadBalancer IPs are routed into antrea-gw0 the same way (next
hop: the virtual IP), so the node's own processes reach them through OVS too. An
endpoint outside the pod network (host network: the API server behind "kubernetes")
is reached back through the host: OVS masquerades such connections to
`HAIRPIN_VIRTUAL_IP`, which the host routes into antrea-gw0 as well and masquerades to
the node's address on the way out (chain `POSTROUTING_CHAIN`).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable, Sequence

from pyroute2.netlink.exceptions import NetlinkError

from antrea_core.agent import hostnet
from antrea_core.agent.openflow.podnetwork import GLOBAL_VIRTUAL_MAC
from antrea_core.agent.podnet.netns import run_in_netns
from antrea_proxy.registers import HAIRPIN_VIRTUAL_IP, NODEPORT_VIRTUAL_IP

log = logging.getLogger("antrea.agent.proxy.nodeport")

CHAIN = "ANTREA-NODEPORT"
POSTROUTING_CHAIN = "ANTREA-PROXY-MASQ"
NUD_PERMANENT = 0x80
RTNH_F_ONLINK = 4  # the virtual next hop has no subnet on antrea-gw0


def restore_input(ports: Iterable[tuple[str, int]],
                  addresses: Sequence[str] | None = None) -> str:
    """iptables-restore input defining `CHAIN` for `ports` ((protocol, port)) on every
    local address, or (`addresses`: nodePortAddresses' IPv4 CIDRs) only those within."""
    lines = ["*nat", f":{CHAIN} - [0:0]", f"-F {CHAIN}"]
    within = [""] if addresses is None else [f"-d {cidr} " for cidr in addresses]
    for protocol, port in sorted(set(ports)):
        proto = protocol.lower()
        lines += [f"-A {CHAIN} {dst}-p {proto} -m addrtype --dst-type LOCAL -m {proto} "
                  f"--dport {port} -j DNAT --to-destination {NODEPORT_VIRTUAL_IP}:{port}"
                  for dst in within]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


class HostNodePorts:
    def __init__(self, gateway: str, netns: str | None = None,
                 addresses: Sequence[str] | None = None) -> None:
        self.gateway = gateway
        self.netns = netns
        # nodePortAddresses' IPv4 CIDRs; None: every local address
        self.addresses = None if addresses is None else tuple(addresses)
        self._ports: frozenset[tuple[str, int]] | None = None
        self._routes: frozenset[str] = frozenset()

    def _run(self, argv: list[str], stdin: str | None = None, check: bool = True) -> int:
        def call() -> int:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                  timeout=30)
            if check and proc.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
            return proc.returncode
        return run_in_netns(self.netns, call)

    def install(self) -> str:
        """Routes and neighbours of the virtual IPs, our chains and the jumps into them.
        Returns the gateway's MAC address."""
        with hostnet.iproute_in(self.netns) as ipr:
            [link] = ipr.link_lookup(ifname=self.gateway)
            for ip in (NODEPORT_VIRTUAL_IP, HAIRPIN_VIRTUAL_IP):
                ipr.route("replace", dst=f"{ip}/32", oif=link)
                ipr.neigh("replace", dst=ip, lladdr=GLOBAL_VIRTUAL_MAC, ifindex=link,
                          state=NUD_PERMANENT)
            [info] = ipr.get_links(link)
            mac = str(info.get("IFLA_ADDRESS"))
        self._run(["iptables-restore", "-w", "--noflush"], restore_input(()))
        self._run(["iptables-restore", "-w", "--noflush"],
                  f"*nat\n:{POSTROUTING_CHAIN} - [0:0]\n-F {POSTROUTING_CHAIN}\n"
                  f"-A {POSTROUTING_CHAIN} -s {HAIRPIN_VIRTUAL_IP}/32 -j MASQUERADE\n"
                  "COMMIT\n")
        for hook, chain in (("PREROUTING", CHAIN), ("OUTPUT", CHAIN),
                            ("POSTROUTING", POSTROUTING_CHAIN)):
            # Add the jump once, whatever earlier agent runs left.
            if self._run(["iptables", "-w", "-t", "nat", "-C", hook, "-j", chain],
                         check=False):
                self._run(["iptables", "-w", "-t", "nat", "-I", hook, "-j", chain])
        log.info("host Service redirection installed gateway=%s", self.gateway)
        return mac

    def sync(self, ports: Iterable[tuple[str, int]], service_ips: Iterable[str] = ()
             ) -> None:
        """NodePorts (protocol, port) to redirect; Service IPs (cluster, external and
        LoadBalancer) to route into the pipeline."""
        wanted = frozenset(ports)
        if wanted != self._ports:
            self._run(["iptables-restore", "-w", "--noflush"],
                      restore_input(wanted, self.addresses))
            self._ports = wanted
            log.info("NodePort host rules synced ports=%d", len(wanted))
        self._sync_routes(frozenset(service_ips))

    def _sync_routes(self, ips: frozenset[str]) -> None:
        """Route Service IPs into the pipeline (next hop = the virtual IP, whose
        neighbour entry points into antrea-gw0)."""
        if ips == self._routes:
            return
        with hostnet.iproute_in(self.netns) as ipr:
            [link] = ipr.link_lookup(ifname=self.gateway)
            for ip in self._routes - ips:
                try:
                    ipr.route("del", dst=f"{ip}/32", gateway=NODEPORT_VIRTUAL_IP, oif=link)
                except NetlinkError as exc:
                    log.debug("external IP route already gone ip=%s err=%s", ip, exc)
            for ip in ips - self._routes:
                ipr.route("replace", dst=f"{ip}/32", gateway=NODEPORT_VIRTUAL_IP, oif=link,
                          flags=RTNH_F_ONLINK)
        self._routes = ips
        log.info("Service IP routes synced count=%d", len(ips))
