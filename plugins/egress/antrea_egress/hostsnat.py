"""The Egress Node's SNAT: one ipset of Pod IPs per Egress IP, one iptables rule each.

The nat chain ANTREA-EGRESS is jumped to first from POSTROUTING, before the core's
ANTREA-POSTROUTING (`antrea_core.agent.snat`) masquerades local Pods, and holds:

    -d <exceptCIDR> -j RETURN                                   (egress.exceptCIDRs)
    -m set --match-set ANTREA-EGRESS-<ip> src
       -m set ! --match-set ANTREA-POD-IP dst ! -o antrea-gw0 -j SNAT --to-source <ip>

Pods of other Nodes reach this host through the tunnel and antrea-gw0 with their own
source IP (their Node redirected them here), local Pods straight from antrea-gw0; both
match by source IP. Antrea marks such packets in OVS and SNATs by packet mark, but the
userspace datapath does not hand OVS's pkt_mark to the kernel, so the source address is
what this host can see. Sync rewrites the chain as a whole with iptables-restore (one
atomic commit; replies keep flowing through conntrack meanwhile) and adds/removes ipset
members by difference.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable, Mapping, Sequence

from antrea_core.agent.snat import IPSET_V4 as POD_CIDRS_IPSET
from antrea_core.agent.snat import run_host_command

log = logging.getLogger("antrea.agent.egress.snat")

CHAIN = "ANTREA-EGRESS"
IPSET_PREFIX = "ANTREA-EGRESS-"


def ipset_name(egress_ip: str) -> str:
    """ipset names are at most 31 characters: the IP in hex keeps them short and unique."""
    return IPSET_PREFIX + "".join(f"{int(octet):02X}" for octet in egress_ip.split("."))


class EgressSNAT:
    def __init__(self, gateway: str, except_cidrs: Iterable[str] = (),
                 fully_random: bool = False, netns: str | None = None) -> None:
        self.gateway = gateway
        self.netns = netns  # a netns path; None: the agent's own
        self.except_cidrs = [c for c in except_cidrs if ":" not in c]
        self.fully_random = fully_random
        self._members: dict[str, set[str]] = {}  # ipset -> members as last written
        self._rules: list[str] | None = None

    def install(self) -> None:
        """The chain and its jump at the head of POSTROUTING, before the core's
        ANTREA-POSTROUTING (which it appends), whoever starts first (idempotent)."""
        self._run(["iptables", "-w", "-t", "nat", "-N", CHAIN], ok_codes=(0, 1))
        jump = ["POSTROUTING", "-m", "comment", "--comment",
                "Antrea: SNAT Pod traffic to Egress IPs", "-j", CHAIN]
        if self._run(["iptables", "-w", "-t", "nat", "-C", *jump], ok_codes=(0, 1)).returncode:
            self._run(["iptables", "-w", "-t", "nat", "-I", *jump[:1], "1", *jump[1:]])

    def sync(self, snat: Mapping[str, frozenset[str]]) -> None:
        """Make the host SNAT exactly the Pods in `snat` (Egress IP -> Pod IPs)."""
        for ip, pods in snat.items():
            self._sync_set(ipset_name(ip), pods)
        rules = [f"-A {CHAIN} -d {cidr} -m comment --comment \"Antrea: except CIDR\" -j RETURN"
                 for cidr in self.except_cidrs]
        for ip in sorted(snat):
            rules.append(
                f"-A {CHAIN} -m set --match-set {ipset_name(ip)} src "
                f"-m set ! --match-set {POD_CIDRS_IPSET} dst ! -o {self.gateway} "
                f"-m comment --comment \"Antrea: Egress IP {ip}\" -j SNAT --to-source {ip}"
                + (" --random-fully" if self.fully_random else ""))
        if rules == self._rules:
            return
        script = "\n".join(["*nat", f":{CHAIN} - [0:0]", *rules, "COMMIT", ""])
        self._run(["iptables-restore", "-w", "--noflush"], stdin=script)
        self._rules = rules
        log.info("egress SNAT rules=%d ips=%s", len(rules), ",".join(sorted(snat)) or "-")
        # Sets no rule references any more can go now (a previous run's included).
        wanted = {ipset_name(ip) for ip in snat}
        for name in [n for n in self._existing_sets() if n not in wanted]:
            self._run(["ipset", "destroy", name], ok_codes=(0, 1))
            self._members.pop(name, None)

    def _sync_set(self, name: str, pods: frozenset[str]) -> None:
        if name not in self._members:
            self._run(["ipset", "create", name, "hash:ip", "family", "inet", "-exist"])
            listed = self._run(["ipset", "list", name, "-output", "save"]).stdout
            self._members[name] = {line.split()[2] for line in listed.splitlines()
                                   if line.startswith("add ")}
        have = self._members[name]
        commands = [f"add {name} {ip} -exist" for ip in sorted(pods - have)]
        commands += [f"del {name} {ip} -exist" for ip in sorted(have - pods)]
        if commands:
            self._run(["ipset", "restore"], stdin="\n".join(commands) + "\n")
            self._members[name] = set(pods)

    def _run(self, argv: Sequence[str], ok_codes: tuple[int, ...] = (0,),
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_host_command(argv, ok_codes, self.netns, stdin)

    def _existing_sets(self) -> list[str]:
        names = self._run(["ipset", "list", "-name"]).stdout.split()
        return [n for n in names if n.startswith(IPSET_PREFIX)]
