"""The node's own network stack, as far as pod networking needs it: the gateway's
addresses and the underlay interface's MTU.

Everything runs in ``netns`` (a netns path; None = the agent's own), because the agent
may serve a node whose namespace is not its own (tests run the agent in-process for a
sandbox node). Netlink sockets are created in that netns without forking (podnet.netns).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from antrea_core.agent.ipam.allocator import IPNetwork
from antrea_core.agent.podnet.netns import open_iproute

log = logging.getLogger("antrea.agent.hostnet")

IFA_F_NODAD = 0x02
EEXIST = 17


class HostNetError(RuntimeError):
    """The node's network stack could not be read or configured; says which device."""


@contextmanager
def iproute_in(netns: str | None) -> Iterator[IPRoute]:
    try:
        ipr = open_iproute(netns)
    except OSError as exc:
        raise HostNetError(f"cannot enter network namespace {netns}: {exc}") from None
    with ipr:
        yield ipr


def configure_gateway(name: str, pod_cidrs: Sequence[IPNetwork], netns: str | None = None
                      ) -> list[str]:
    """Give the gateway device the first address of each pod CIDR and bring it up.

    Idempotent (an address already there is kept). Returns the addresses, "ip/len".
    The kernel derives the route to each pod CIDR via the gateway from the address.
    """
    wanted = [ipaddress.ip_interface(f"{c.network_address + 1}/{c.prefixlen}")
              for c in pod_cidrs]
    with iproute_in(netns) as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            raise HostNetError(f"gateway device {name} does not exist (did ovs-vswitchd "
                               "create the internal port?)")
        index = found[0]
        for addr in wanted:
            try:
                # No DAD: a tentative gateway address would break the first pods' IPv6.
                ipr.addr("add", index=index, address=str(addr.ip),
                         prefixlen=addr.network.prefixlen,
                         flags=IFA_F_NODAD if addr.version == 6 else 0)
            except NetlinkError as exc:
                if exc.code != EEXIST:
                    raise HostNetError(f"cannot add {addr} to {name}: {exc}") from None
        ipr.link("set", index=index, state="up")
    log.info("gateway configured device=%s addresses=%s", name,
             ",".join(str(a) for a in wanted))
    return [str(a) for a in wanted]


def link_mtu(name: str, netns: str | None = None) -> int:
    with iproute_in(netns) as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            raise HostNetError(f"transport interface {name} does not exist")
        return int(ipr.get_links(found[0])[0].get("IFLA_MTU"))


def mtu_of_address_holder(ips: Sequence[str], netns: str | None = None
                          ) -> tuple[str, int] | None:
    """(device, MTU) of the first device holding one of ``ips``; None if none does."""
    wanted = {str(ipaddress.ip_address(ip)) for ip in ips}
    with iproute_in(netns) as ipr:
        for addr in ipr.get_addr():
            local = addr.get("IFA_LOCAL") or addr.get("IFA_ADDRESS")
            if local in wanted:
                link = ipr.get_links(addr["index"])[0]
                return str(link.get("IFLA_IFNAME")), int(link.get("IFLA_MTU"))
    return None


def subnets_of_addresses(ips: Sequence[str], netns: str | None = None
                         ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The subnets (address/prefix as configured) of the local addresses among ``ips``:
    the node's transport subnets, which hybrid mode reaches without a tunnel."""
    wanted = {str(ipaddress.ip_address(ip)) for ip in ips}
    found = []
    with iproute_in(netns) as ipr:
        for addr in ipr.get_addr():
            local = addr.get("IFA_LOCAL") or addr.get("IFA_ADDRESS")
            if local in wanted:
                found.append(ipaddress.ip_interface(f"{local}/{addr['prefixlen']}").network)
    return tuple(dict.fromkeys(found))


def underlay_mtu(node_ips: Sequence[str], transport_interface: str = "",
                 netns: str | None = None) -> int | None:
    """The MTU of ``transport_interface`` if set, else of the device holding a node IP."""
    if transport_interface:
        return link_mtu(transport_interface, netns)
    found = mtu_of_address_holder(node_ips, netns)
    if found is None:
        log.warning("no local device holds the node's addresses ips=%s", ",".join(node_ips))
        return None
    device, mtu = found
    log.info("underlay discovered device=%s mtu=%d", device, mtu)
    return mtu
