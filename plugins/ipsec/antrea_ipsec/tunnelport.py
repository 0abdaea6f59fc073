"""The encrypted tunnel port: one kernel VXLAN device attached to the node's bridge.

OVS userspace tunnels encapsulate inside ovs-vswitchd and never reach the kernel's
routing, so charon's libipsec (which encrypts what the kernel routes into ipsec0) cannot
see them. Tunnel traffic of an IPsec node is therefore encapsulated by the kernel: the
pipeline outputs a peer's frames to `antrea-ipsec0`, a kernel VXLAN device; the kernel
sends each frame as UDP to the peer's transport IP, which charon's routes (table 220)
take into ipsec0 and out as ESP-in-UDP.

One device serves every peer. A VXLAN device sends a frame to the peer its forwarding
database (FDB) names for the frame's destination MAC, so each peer gets a MAC of its own
(`peer_mac`, derived from its transport IP) and a static FDB entry; the pipeline rewrites
the destination MAC to it. (One device per peer, as Antrea has one OVS port per peer,
would need a VNI per node pair: the kernel refuses two VXLAN devices with the same VNI
and port in one netns.) Learning is off, so only the agent writes the FDB.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger("antrea.agent.ipsec.tunnelport")

DEVICE = "antrea-ipsec0"
VNI = 1
VXLAN_PORT = 4789
# Outer IPv4 + UDP + VXLAN + the inner Ethernet header the device carries.
VXLAN_OVERHEAD = 20 + 8 + 8 + 14
ENOENT = 2
NUD_PERMANENT = 0x80
NTF_SELF = 0x02  # the entry belongs to the VXLAN device itself (not a bridge master)


class TunnelPortError(RuntimeError):
    """The VXLAN device could not be created or configured; the message says which."""


def peer_mac(transport_ip: str) -> str:
    """A locally administered unicast MAC that names one peer in the FDB:
    aa:ad + the peer's IPv4 address, so every node derives the same one."""
    packed = ipaddress.IPv4Address(transport_ip).packed
    return "aa:ad:" + ":".join(f"{b:02x}" for b in packed)


@dataclass(frozen=True)
class DeviceSpec:
    local_ip: str
    mtu: int
    name: str = DEVICE
    vni: int = VNI
    port: int = VXLAN_PORT


@contextmanager
def _ipr() -> Iterator[IPRoute]:
    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


class EncryptedTunnelPort:
    """Creates/converges the VXLAN device and keeps one FDB entry per peer."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec

    def _index(self, ipr: IPRoute) -> int | None:
        found = ipr.link_lookup(ifname=self.spec.name)
        return found[0] if found else None

    def _matches(self, ipr: IPRoute, index: int) -> bool:
        link = ipr.get_links(index)[0]
        info = link.get_attr("IFLA_LINKINFO")
        if info is None or info.get_attr("IFLA_INFO_KIND") != "vxlan":
            return False
        data = info.get_attr("IFLA_INFO_DATA")
        return (data.get_attr("IFLA_VXLAN_ID") == self.spec.vni
                and data.get_attr("IFLA_VXLAN_LOCAL") == self.spec.local_ip
                and data.get_attr("IFLA_VXLAN_PORT") == self.spec.port
                and not data.get_attr("IFLA_VXLAN_LEARNING"))

    def ensure(self) -> int:
        """The device up with the spec's VNI, local IP, port and MTU; returns its index.
        A device left by an earlier run is kept when it matches (its OVS port and FDB
        stay valid) and replaced when it does not (e.g. the node IP changed)."""
        spec = self.spec
        with _ipr() as ipr:
            try:
                index = self._index(ipr)
                if index is not None and not self._matches(ipr, index):
                    log.info("replacing VXLAN device %s (settings changed)", spec.name)
                    ipr.link("del", index=index)
                    index = None
                if index is None:
                    ipr.link("add", ifname=spec.name, kind="vxlan", vxlan_id=spec.vni,
                             vxlan_local=spec.local_ip, vxlan_port=spec.port,
                             vxlan_learning=0)
                    index = self._index(ipr)
                    assert index is not None
                ipr.link("set", index=index, mtu=spec.mtu, state="up")
            except NetlinkError as exc:
                raise TunnelPortError(f"VXLAN device {spec.name} (VNI {spec.vni}, local "
                                      f"{spec.local_ip}, port {spec.port}): {exc}") from exc
        return index

    def set_peer(self, transport_ip: str) -> None:
        """Frames to `peer_mac(transport_ip)` go to that peer."""
        with _ipr() as ipr:
            index = self._index(ipr)
            if index is None:
                raise TunnelPortError(f"VXLAN device {self.spec.name} is gone")
            ipr.fdb("replace", ifindex=index, lladdr=peer_mac(transport_ip),
                    dst=transport_ip, state=NUD_PERMANENT, flags=NTF_SELF)

    def remove_peer(self, transport_ip: str) -> None:
        with _ipr() as ipr:
            index = self._index(ipr)
            if index is None:
                return
            try:
                ipr.fdb("del", ifindex=index, lladdr=peer_mac(transport_ip),
                        dst=transport_ip, flags=NTF_SELF)
            except NetlinkError as exc:
                if exc.code != ENOENT:
                    raise

    def peers(self) -> dict[str, str]:
        """MAC → destination IP of every FDB entry (those of an earlier run included)."""
        found: dict[str, str] = {}
        with _ipr() as ipr:
            index = self._index(ipr)
            if index is None:
                return found
            for entry in ipr.fdb("dump", ifindex=index):
                if entry.get("ifindex") != index:
                    continue
                mac, dst = entry.get_attr("NDA_LLADDR"), entry.get_attr("NDA_DST")
                if mac and dst and mac != "00:00:00:00:00:00":
                    found[mac] = dst
        return found

    def mtu(self) -> int | None:
        with _ipr() as ipr:
            index = self._index(ipr)
            return None if index is None else int(ipr.get_links(index)[0].get_attr("IFLA_MTU"))


def pod_mtu_limit(underlay_mtu: int, tun_mtu: int) -> int:
    """The largest pod MTU whose frames fit in one ESP packet: the VXLAN packet must fit
    ipsec0 (`tun_mtu`), and the ESP-in-UDP packet around it the underlay."""
    return min(tun_mtu, underlay_mtu - ESP_UDP_OVERHEAD) - VXLAN_OVERHEAD


# Tunnel-mode ESP in UDP, worst case over the proposals offered (sa.ESP_PROPOSALS): outer
# IPv4 20 + UDP 8 + SPI/sequence 8 + IV 16 (CBC; GCM uses 8) + padding 15 + pad length and
# next header 2 + ICV 16.
ESP_UDP_OVERHEAD = 20 + 8 + 8 + 16 + 15 + 2 + 16
