"""Fail-closed: tunnel packets to/from IPsec peers never cross the underlay in plaintext.

With kernel-libipsec, an installed CHILD SA is a route (table 220) into the TUN device
`ipsec0`; charon reads the packet there and sends it out as ESP-in-UDP. When the SA or
charon is gone, that route vanishes and the kernel VXLAN packet would leave through the
underlay in plaintext. There are no kernel xfrm policies either, so `-m policy --pol none`
matches every packet, encrypted path included (measured) and cannot tell the two apart.
What does: the output interface. A VXLAN packet to a peer that is not routed into ipsec0
is dropped; one arriving from a peer that did not come out of ipsec0 (i.e. not decrypted
by charon) is dropped too.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

log = logging.getLogger("antrea.agent.ipsec.failclosed")

CHAIN_OUT = "ANTREA-IPSEC-OUT"
CHAIN_IN = "ANTREA-IPSEC-IN"
TUN_DEV = "ipsec0"
VXLAN_PORT = 4789


class FailClosedError(RuntimeError):
    """An iptables command failed; the message has the command and its stderr."""


class FailClosed:
    """The drop rules of one node netns (None: the caller's own netns)."""

    def __init__(self, netns: str | None = None, port: int = VXLAN_PORT,
                 tun_dev: str = TUN_DEV) -> None:
        self.netns = netns
        self.port = port
        self.tun_dev = tun_dev

    def _cmd(self, args: Sequence[str], ok_codes: tuple[int, ...] = (0,)
             ) -> subprocess.CompletedProcess[str]:
        argv = [*(["ip", "netns", "exec", self.netns] if self.netns else []),
                "iptables", "-w", "5", *args]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode not in ok_codes:
            raise FailClosedError(f"iptables {' '.join(args)} (netns {self.netns}): "
                                  f"{proc.stderr.strip() or proc.returncode}")
        return proc

    def _ensure(self, chain: str, rule: Sequence[str]) -> None:
        if self._cmd(["-C", chain, *rule], ok_codes=(0, 1)).returncode:
            self._cmd(["-A", chain, *rule])

    def install(self) -> None:
        """Create the chains and jump to them first from OUTPUT and INPUT."""
        for chain, hook in ((CHAIN_OUT, "OUTPUT"), (CHAIN_IN, "INPUT")):
            self._cmd(["-N", chain], ok_codes=(0, 1))  # 1: exists
            jump = ["-m", "comment", "--comment", "Antrea: IPsec fail-closed", "-j", chain]
            if self._cmd(["-C", hook, *jump], ok_codes=(0, 1)).returncode:
                self._cmd(["-I", hook, "1", *jump])
        log.info("IPsec fail-closed chains installed netns=%s", self.netns)

    def _rules(self, peer_ip: str) -> tuple[tuple[str, list[str]], ...]:
        common = ["-p", "udp", "--dport", str(self.port)]
        return (
            (CHAIN_OUT, ["-d", f"{peer_ip}/32", *common, "!", "-o", self.tun_dev,
                         "-m", "comment", "--comment", "Antrea: unencrypted tunnel to IPsec "
                         "peer", "-j", "DROP"]),
            (CHAIN_IN, ["-s", f"{peer_ip}/32", *common, "!", "-i", self.tun_dev,
                        "-m", "comment", "--comment", "Antrea: unencrypted tunnel from IPsec "
                        "peer", "-j", "DROP"]),
        )

    def add_peer(self, peer_tunnel_ip: str) -> None:
        for chain, rule in self._rules(peer_tunnel_ip):
            self._ensure(chain, rule)

    def remove_peer(self, peer_tunnel_ip: str) -> None:
        for chain, rule in self._rules(peer_tunnel_ip):
            while not self._cmd(["-C", chain, *rule], ok_codes=(0, 1)).returncode:
                self._cmd(["-D", chain, *rule])

    def peers(self) -> set[str]:
        """The peer IPs that have drop rules now (an earlier agent run may have left some)."""
        out = self._cmd(["-S", CHAIN_OUT], ok_codes=(0, 1)).stdout.split()
        return {out[i + 1].removesuffix("/32") for i, word in enumerate(out[:-1])
                if word == "-d"}

    def dropped_packets(self) -> int:
        """Packets dropped so far by the peer rules, outbound and inbound together."""
        total = 0
        for chain in (CHAIN_OUT, CHAIN_IN):
            out = self._cmd(["-L", chain, "-n", "-v", "-x"]).stdout.splitlines()[2:]
            total += sum(int(line.split()[0]) for line in out if "DROP" in line)
        return total

    def uninstall(self) -> None:
        for chain, hook in ((CHAIN_OUT, "OUTPUT"), (CHAIN_IN, "INPUT")):
            jump = ["-m", "comment", "--comment", "Antrea: IPsec fail-closed", "-j", chain]
            while not self._cmd(["-C", hook, *jump], ok_codes=(0, 1, 2)).returncode:
                self._cmd(["-D", hook, *jump])
            self._cmd(["-F", chain], ok_codes=(0, 1))
            self._cmd(["-X", chain], ok_codes=(0, 1))
