"""Masquerade of pod traffic that leaves the cluster, with ipset + iptables like Antrea.

ipset ANTREA-POD-IP holds every podCIDR of the cluster (this node's and the remote
nodes', kept by the node route controller). One rule in the nat table's chain
ANTREA-POSTROUTING (jumped to from POSTROUTING) masquerades packets from a local pod
CIDR to anything that is not a pod and does not go back to the pods through the gateway,
so traffic to the outside carries the node IP while pod-to-pod and pod-to-node traffic
keep the pod IP. Everything is created idempotently; a restarted agent finds it in place.
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess
from collections.abc import Iterable, Sequence

log = logging.getLogger("antrea.agent.snat")

IPSET_V4 = "ANTREA-POD-IP"
IPSET_V6 = "ANTREA-POD-IP6"
CHAIN = "ANTREA-POSTROUTING"


class SNATError(RuntimeError):
    """An ipset/iptables command failed; the message has the command and its stderr."""


def run_host_command(argv: Sequence[str], ok_codes: tuple[int, ...] = (0,),
                     netns: str | None = None, stdin: str | None = None
                     ) -> subprocess.CompletedProcess:
    """Run an ipset/iptables command (in `netns`, a netns path, if given); SNATError with
    the command and its stderr unless it exits with one of `ok_codes`."""
    full = [*(["nsenter", f"--net={netns}"] if netns else []), *argv]
    proc = subprocess.run(full, input=stdin, capture_output=True, text=True)
    if proc.returncode not in ok_codes:
        raise SNATError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


class PodSNAT:
    def __init__(self, gateway: str, local_pod_cidrs: Iterable[str],
                 netns: str | None = None) -> None:
        self.gateway = gateway
        self.netns = netns  # a netns path; None: the agent's own
        self.local = [ipaddress.ip_network(c, strict=False) for c in local_pod_cidrs]

    def install(self) -> None:
        for version, ipset, iptables in ((4, IPSET_V4, "iptables"), (6, IPSET_V6, "ip6tables")):
            cidrs = [c for c in self.local if c.version == version]
            if not cidrs:
                continue
            family = "inet" if version == 4 else "inet6"
            self._cmd(["ipset", "create", ipset, "hash:net", "family", family, "-exist"])
            for cidr in cidrs:
                self._ipset_add(ipset, str(cidr))
            self._cmd([iptables, "-t", "nat", "-N", CHAIN], ok_codes=(0, 1))  # 1: exists
            jump = ["POSTROUTING", "-m", "comment", "--comment", "Antrea: jump to Antrea "
                    "postrouting rules", "-j", CHAIN]
            if self._cmd([iptables, "-t", "nat", "-C", *jump], ok_codes=(0, 1)).returncode:
                self._cmd([iptables, "-t", "nat", "-A", *jump])
            for cidr in cidrs:
                rule = [CHAIN, "-s", str(cidr), "-m", "set", "!", "--match-set", ipset, "dst",
                        "!", "-o", self.gateway, "-m", "comment", "--comment",
                        "Antrea: masquerade pod to external packets", "-j", "MASQUERADE"]
                if self._cmd([iptables, "-t", "nat", "-C", *rule], ok_codes=(0, 1)).returncode:
                    self._cmd([iptables, "-t", "nat", "-A", *rule])
        log.info("pod SNAT installed gateway=%s podCIDRs=%s", self.gateway,
                 ",".join(map(str, self.local)))

    def add_pod_cidrs(self, cidrs: Iterable[str]) -> None:
        """Remote nodes' podCIDRs: traffic to them is pod-to-pod, never masqueraded."""
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            self._ipset_add(IPSET_V4 if net.version == 4 else IPSET_V6, str(net))

    def remove_pod_cidrs(self, cidrs: Iterable[str]) -> None:
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            ipset = IPSET_V4 if net.version == 4 else IPSET_V6
            self._cmd(["ipset", "del", ipset, str(net), "-exist"])

    def _ipset_add(self, ipset: str, cidr: str) -> None:
        self._cmd(["ipset", "add", ipset, cidr, "-exist"])

    def _cmd(self, argv: Sequence[str], ok_codes: tuple[int, ...] = (0,)
             ) -> subprocess.CompletedProcess:
        return run_host_command(argv, ok_codes, self.netns)
