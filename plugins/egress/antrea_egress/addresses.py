"""Egress IPs on the Egress Node: configured on the transport interface, announced by
gratuitous ARP.

An Egress IP is added to the interface that holds the Node's transport IP (the underlay
answers ARP for it there, and SNAT-ed packets leave through it). Antrea parks its Egress
IPs on a dummy device; this kernel has no dummy module, and the transport interface
works the same for ARP. Addresses we add carry the label ``<interface>:eg`` so that a
restarted agent can tell them from the ones an operator configured and remove those it
no longer owns. After adding an IP (or taking it over from a failed Node) we send
gratuitous ARP so that neighbours update their caches at once rather than after their
ARP entries go stale.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Iterable, Mapping

from os_ken.lib.packet import arp, ethernet, packet
from os_ken.ofproto import ether
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from antrea_core.agent.podnet.netns import open_iproute, socket_in_netns

log = logging.getLogger("antrea.agent.egress.addresses")

LABEL_SUFFIX = ":eg"
EEXIST, EADDRNOTAVAIL = 17, 99
GARP_REPEATS = (0.0, 0.5, 2.0)  # seconds after the IP moves: a lost packet is not fatal


class AddressError(RuntimeError):
    """An Egress IP could not be configured; names the IP and the device."""


def label_for(ifname: str) -> str:
    return (ifname + LABEL_SUFFIX)[:15]


class EgressAddresses:
    def __init__(self, node_ips: Iterable[str], netns: str | None = None) -> None:
        self.node_ips = {str(ipaddress.ip_address(ip)) for ip in node_ips}
        self.netns = netns  # a netns path; None: the agent's own
        self._garp_timers: list[threading.Timer] = []

    def transport_interface(self, ipr: IPRoute) -> tuple[int, str, str]:
        """(index, name, MAC) of the device holding a Node IP."""
        for addr in ipr.get_addr(family=socket.AF_INET):
            if addr.get_attr("IFA_LOCAL") in self.node_ips:
                link = ipr.get_links(addr["index"])[0]
                return addr["index"], link.get_attr("IFLA_IFNAME"), link.get_attr(
                    "IFLA_ADDRESS")
        raise AddressError(f"no interface holds the Node IPs {sorted(self.node_ips)}")

    def local_ips(self) -> set[str]:
        """Every IPv4 address on this Node (to find Egress IPs configured by hand)."""
        with open_iproute(self.netns) as ipr:
            return {a.get_attr("IFA_LOCAL") for a in ipr.get_addr(family=socket.AF_INET)}

    def sync(self, owned: Mapping[str, int]) -> list[str]:
        """Configure exactly `owned` (IP -> prefix length) among our labelled addresses;
        returns the IPs newly added (they have been announced)."""
        added: list[str] = []
        with open_iproute(self.netns) as ipr:
            index, ifname, mac = self.transport_interface(ipr)
            label = label_for(ifname)
            ours = {a.get_attr("IFA_LOCAL"): a["prefixlen"]
                    for a in ipr.get_addr(family=socket.AF_INET, index=index)
                    if a.get_attr("IFA_LABEL") == label}
            for ip, prefix in ours.items():
                if owned.get(ip) != prefix:
                    try:
                        ipr.addr("del", index=index, address=ip, prefixlen=prefix)
                    except NetlinkError as exc:
                        if exc.code != EADDRNOTAVAIL:
                            raise AddressError(f"remove Egress IP {ip} from {ifname}: "
                                               f"{exc}") from None
                    log.info("egress IP released ip=%s dev=%s", ip, ifname)
            for ip, prefix in owned.items():
                if ours.get(ip) == prefix:
                    continue
                try:
                    ipr.addr("add", index=index, address=ip, prefixlen=prefix, label=label)
                except NetlinkError as exc:
                    if exc.code != EEXIST:
                        raise AddressError(f"add Egress IP {ip}/{prefix} to {ifname}: "
                                           f"{exc}") from None
                log.info("egress IP assigned ip=%s/%d dev=%s", ip, prefix, ifname)
                added.append(ip)
        for ip in added:
            self.announce(ifname, mac, ip)
        return added

    def release_all(self) -> None:
        self.sync({})

    def announce(self, ifname: str, mac: str, ip: str) -> None:
        """Gratuitous ARP for `ip`, now and twice more shortly after."""
        frame = gratuitous_arp(mac, ip)
        for delay in GARP_REPEATS:
            if delay == 0:
                self._send(ifname, frame, ip)
                continue
            timer = threading.Timer(delay, self._send, (ifname, frame, ip))
            timer.daemon = True
            timer.start()
            self._garp_timers = [t for t in self._garp_timers if t.is_alive()] + [timer]

    def close(self) -> None:
        for timer in self._garp_timers:
            timer.cancel()

    def _send(self, ifname: str, frame: bytes, ip: str) -> None:
        try:
            with (socket.socket(socket.AF_PACKET, socket.SOCK_RAW) if self.netns is None
                  else socket_in_netns(self.netns, socket.AF_PACKET, socket.SOCK_RAW)) as sock:
                sock.bind((ifname, 0))
                sock.send(frame)
        except OSError as exc:
            log.warning("gratuitous ARP failed ip=%s dev=%s error=%s", ip, ifname, exc)


def gratuitous_arp(mac: str, ip: str) -> bytes:
    """An ARP request for `ip` from `ip` itself, broadcast: neighbours holding an entry
    for `ip` replace its MAC (Linux does so for requests and replies alike)."""
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=mac,
                                       ethertype=ether.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=mac, src_ip=ip,
                             dst_mac="00:00:00:00:00:00", dst_ip=ip))
    pkt.serialize()
    return bytes(pkt.data)
