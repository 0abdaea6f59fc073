"""A pod's veth pair: create it, configure the pod side, check it, delete it (pyroute2).

The host side stays in the agent's netns (to be attached to the OVS bridge by the
caller); the peer is created directly inside the pod's netns under the CNI ifname, so no
temporary name is ever visible in the host namespace. The host side's ifalias records
the container id and ifname, so a late DEL (e.g. one queued while the agent was down)
never deletes the interface of a newer sandbox of the same pod.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from antrea_core.agent.ipam.allocator import AllocatedIP
from antrea_core.agent.podnet import ethtool
from antrea_core.agent.podnet.netns import open_iproute, socket_in_netns, write_sysctls

log = logging.getLogger("antrea.agent.podnet")

IFNAME_MAX = 15  # IFNAMSIZ - 1
IFA_F_NODAD = 0x02
MAIN_TABLE = 254


class PodNetError(Exception):
    """Setting up, checking or deleting a pod interface failed; says which and why."""


def host_interface_name(pod_namespace: str, pod_name: str) -> str:
    """The host-side name of a pod's veth: the first 8 characters of the pod name, '-', and
    6 hex digits of a hash of namespace/name, as Antrea names them (``coredns--3ea4f6``).

    Deterministic, so the agent can find the port of a pod again after a restart; at most
    15 characters, the kernel's limit.
    """
    digest = hashlib.sha1(f"{pod_namespace}/{pod_name}".encode()).hexdigest()[:6]
    return f"{pod_name[:8]}-{digest}"


@dataclass(frozen=True)
class PodInterfaceSpec:
    """What to create for one attachment."""

    container_id: str
    netns: str  # CNI_NETNS: /run/netns/<name> or /proc/<pid>/ns/net
    ifname: str  # CNI_IFNAME, e.g. eth0
    host_ifname: str  # see host_interface_name
    ips: Sequence[AllocatedIP]
    mtu: int
    mac: str | None = None  # None: keep the kernel's random, locally administered MAC
    disable_tx_checksum: bool = False  # True with the userspace (netdev) datapath

    @property
    def owner_tag(self) -> str:
        return f"{self.container_id}/{self.ifname}"


@dataclass(frozen=True)
class PodInterface:
    """What setup() created: enough to attach the host side and answer the CNI ADD."""

    spec: PodInterfaceSpec
    host_index: int
    host_mac: str
    mac: str

    def routes(self) -> list[dict[str, str]]:
        return [{"dst": "0.0.0.0/0" if ip.version == 4 else "::/0", "gw": str(ip.gateway)}
                for ip in self.spec.ips]

    def cni_result(self) -> dict[str, Any]:
        """interfaces, ips and routes of a CNI 1.0.0 result (index 1 is the pod side)."""
        return {
            "interfaces": [
                {"name": self.spec.host_ifname, "mac": self.host_mac},
                {"name": self.spec.ifname, "mac": self.mac, "sandbox": self.spec.netns},
            ],
            "ips": [{"address": str(ip.address), "gateway": str(ip.gateway), "interface": 1}
                    for ip in self.spec.ips],
            "routes": self.routes(),
        }


@contextmanager
def _iproute(netns_path: str | None) -> Iterator[IPRoute]:
    try:
        ipr = open_iproute(netns_path)
    except FileNotFoundError:
        raise PodNetError(f"network namespace {netns_path} does not exist") from None
    except OSError as exc:
        raise PodNetError(f"cannot enter network namespace {netns_path}: {exc}") from None
    with ipr:
        yield ipr


def _index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def _link(ipr: IPRoute, index: int) -> Any:
    return ipr.get_links(index)[0]


class PodInterfaces:
    """Creates and deletes pod veth pairs; the host side lives in ``host_netns`` (a netns
    path; None = the agent's own netns). Safe to use from several threads at once (each
    call opens its own netlink sockets)."""

    def __init__(self, host_netns: str | None = None) -> None:
        self.host_netns = host_netns

    # -- ADD --------------------------------------------------------------------------
    def _isolate_host_side(self, ifname: str) -> None:
        """Userspace datapath: OVS reads the host side through a packet socket, but the
        host's kernel still receives every frame on it too. Left alone, the kernel
        answers the pod's ARP for the gateway with the veth's own MAC and forwards the
        pod's packets itself, so a connection gets committed twice in conntrack and its
        replies go astray (*measured*: new pods' first connections across nodes failed
        for 5-10 s). Make the kernel ignore the host side: no ARP answers, no forwarding,
        no IPv6."""
        write_sysctls(self.host_netns, {
            f"ipv4/conf/{ifname}/arp_ignore": "8",
            f"ipv4/conf/{ifname}/forwarding": "0",
            f"ipv6/conf/{ifname}/disable_ipv6": "1",
        })

    def setup(self, spec: PodInterfaceSpec) -> PodInterface:
        if len(spec.host_ifname) > IFNAME_MAX:
            raise PodNetError(f"host interface name {spec.host_ifname!r} is longer than "
                              f"{IFNAME_MAX} characters")
        if not os.path.exists(spec.netns):
            raise PodNetError(f"network namespace {spec.netns} does not exist")
        with self._host() as host, _iproute(spec.netns) as pod:
            stale = _index(host, spec.host_ifname)
            if stale is not None:
                # A previous sandbox of this pod (or a retried ADD) left it: the new one wins.
                log.warning("replacing stale pod interface name=%s container=%s",
                            spec.host_ifname, spec.container_id)
                self._delete_link(host, stale)
            if _index(pod, spec.ifname) is not None:
                raise PodNetError(f"interface {spec.ifname} already exists in {spec.netns}")
            try:
                return self._create(host, pod, spec)
            except (NetlinkError, OSError) as exc:
                created = _index(host, spec.host_ifname)
                if created is not None:
                    self._delete_link(host, created)  # the pod side goes with it
                raise PodNetError(f"failed to set up {spec.ifname} in {spec.netns} "
                                  f"(host side {spec.host_ifname}): {exc}") from None

    def _create(self, host: IPRoute, pod: IPRoute, spec: PodInterfaceSpec) -> PodInterface:
        ns_fd = os.open(spec.netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            host.link("add", ifname=spec.host_ifname, kind="veth", mtu=spec.mtu,
                      peer={"ifname": spec.ifname, "net_ns_fd": ns_fd})
        finally:
            os.close(ns_fd)
        host_index = _index(host, spec.host_ifname)
        pod_index = _index(pod, spec.ifname)
        if host_index is None or pod_index is None:
            raise PodNetError(f"veth {spec.host_ifname}/{spec.ifname} vanished after creation")
        host.link("set", index=host_index, ifalias=spec.owner_tag)
        if spec.disable_tx_checksum:
            self._isolate_host_side(spec.host_ifname)
        changes: dict[str, Any] = {"mtu": spec.mtu}
        if spec.mac:
            changes["address"] = spec.mac
        pod.link("set", index=pod_index, **changes)
        if spec.disable_tx_checksum:
            with socket_in_netns(spec.netns, socket.AF_INET, socket.SOCK_DGRAM) as sock:
                ethtool.set_tx_checksum(sock, spec.ifname, False)
        for ip in spec.ips:
            # No DAD: the address is ours by allocation, and a tentative IPv6 address
            # would make the pod's first second of traffic fail.
            pod.addr("add", index=pod_index, address=str(ip.address.ip),
                     prefixlen=ip.address.network.prefixlen,
                     flags=IFA_F_NODAD if ip.version == 6 else 0)
        pod.link("set", index=pod_index, state="up")
        host.link("set", index=host_index, state="up")
        for ip in spec.ips:
            family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            pod.route("add", dst="0.0.0.0/0" if ip.version == 4 else "::/0",
                      gateway=str(ip.gateway), oif=pod_index, family=family)
        created = PodInterface(spec=spec, host_index=host_index,
                               host_mac=_link(host, host_index).get("address"),
                               mac=_link(pod, pod_index).get("address"))
        log.info("pod interface up container=%s host=%s ifname=%s netns=%s ips=%s mtu=%d",
                 spec.container_id, spec.host_ifname, spec.ifname, spec.netns,
                 ",".join(str(ip.address) for ip in spec.ips), spec.mtu)
        return created

    # -- CHECK ------------------------------------------------------------------------
    def check(self, spec: PodInterfaceSpec) -> None:
        """Raise PodNetError listing every way the interface differs from ``spec``."""
        problems: list[str] = []
        with self._host() as host:
            host_index = _index(host, spec.host_ifname)
            if host_index is None:
                problems.append(f"host interface {spec.host_ifname} is missing")
            elif _link(host, host_index).get("IFLA_IFALIAS") != spec.owner_tag:
                problems.append(f"host interface {spec.host_ifname} belongs to another "
                                "container")
        with _iproute(spec.netns) as pod:
            index = _index(pod, spec.ifname)
            if index is None:
                problems.append(f"{spec.ifname} is missing in {spec.netns}")
            else:
                problems.extend(self._check_pod_side(pod, index, spec))
        if problems:
            raise PodNetError("; ".join(problems))

    @staticmethod
    def _check_pod_side(pod: IPRoute, index: int, spec: PodInterfaceSpec) -> list[str]:
        problems = []
        link = _link(pod, index)
        if link.get("IFLA_MTU") != spec.mtu:
            problems.append(f"{spec.ifname} has MTU {link.get('IFLA_MTU')}, want {spec.mtu}")
        if spec.mac and str(link.get("IFLA_ADDRESS")).lower() != spec.mac.lower():
            problems.append(f"{spec.ifname} has MAC {link.get('IFLA_ADDRESS')}, want {spec.mac}")
        have = {(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in pod.get_addr(index=index)}
        for ip in spec.ips:
            if (str(ip.address.ip), ip.address.network.prefixlen) not in have:
                problems.append(f"{spec.ifname} lacks address {ip.address}")
            family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            defaults = {r.get("RTA_GATEWAY") for r in pod.get_routes(family=family,
                                                                      table=MAIN_TABLE)
                        if r["dst_len"] == 0 and r.get("RTA_OIF") == index}
            if str(ip.gateway) not in defaults:
                problems.append(f"no default route via {ip.gateway} on {spec.ifname}")
        return problems

    # -- DEL --------------------------------------------------------------------------
    def teardown(self, host_ifname: str, *, container_id: str = "", netns: str = "",
                 ifname: str = "") -> bool:
        """Delete the pair; True if something was deleted, False if nothing was left.

        With ``container_id`` the host side is only deleted if it belongs to that
        container. With ``netns`` (it may be gone already) and ``ifname``, a pod side
        whose host side is missing is deleted too.
        """
        deleted = False
        with self._host() as host:
            index = _index(host, host_ifname)
            if index is not None:
                alias = _link(host, index).get("IFLA_IFALIAS")
                if container_id and ifname and alias != f"{container_id}/{ifname}":
                    log.warning("not deleting %s: it belongs to %s, not %s/%s", host_ifname,
                                alias, container_id, ifname)
                else:
                    deleted = self._delete_link(host, index)
        if netns and ifname and not deleted and os.path.exists(netns):
            with suppress(PodNetError), _iproute(netns) as pod:
                index = _index(pod, ifname)
                if index is not None:
                    deleted = self._delete_link(pod, index)
        if deleted:
            log.info("pod interface deleted container=%s host=%s", container_id or "-",
                     host_ifname)
        return deleted

    # -- helpers ----------------------------------------------------------------------
    def _host(self) -> AbstractContextManager[IPRoute]:
        return _iproute(self.host_netns)

    @staticmethod
    def _delete_link(ipr: IPRoute, index: int) -> bool:
        try:
            ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code == 19:  # ENODEV: deleted concurrently, e.g. with its netns
                return False
            raise PodNetError(f"failed to delete interface index {index}: {exc}") from None
        return True
