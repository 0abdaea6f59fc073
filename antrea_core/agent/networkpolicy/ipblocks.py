"""Peer addresses: ipBlocks minus their excepts, as plain CIDRs.

A flow matches a CIDR, never "a CIDR but not these", so an ipBlock with excepts is
split into the CIDRs that remain (``ipaddress.address_exclude``). 10.0.0.0/16 except
10.0.1.0/24 is 8 CIDRs; each except costs at most prefix-length flows.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable

from antrea_core.apis.controlplane import IPBlock

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def block_cidrs(block: IPBlock) -> list[Network]:
    """The CIDRs an ipBlock covers once its excepts are cut out."""
    remaining: list[Network] = [ipaddress.ip_network(block.cidr, strict=False)]
    for text in block.except_:
        cut = ipaddress.ip_network(text, strict=False)
        next_remaining: list[Network] = []
        for net in remaining:
            if net.version != cut.version or not net.overlaps(cut):
                next_remaining.append(net)
            elif cut.supernet_of(net):  # type: ignore[arg-type]
                continue  # excepted entirely
            else:
                next_remaining.extend(net.address_exclude(cut))  # type: ignore[arg-type]
        remaining = next_remaining
    return sorted(remaining, key=lambda n: (n.version, n.network_address, n.prefixlen))


@functools.lru_cache(maxsize=1 << 17)
def host_cidr(ip: str) -> str:
    """"10.0.0.1" -> "10.0.0.1/32", normalized (cached: pod IPs repeat across rules).
    inet_pton/ntop rather than ipaddress: ~20x faster, and 10k peers parse once each."""
    for family, bits in ((socket.AF_INET, 32), (socket.AF_INET6, 128)):
        try:
            return f"{socket.inet_ntop(family, socket.inet_pton(family, ip))}/{bits}"
        except OSError:
            continue
    return str(ipaddress.ip_network(ip))  # raises with a clear message


def peer_cidrs(ips: Iterable[str], blocks: Iterable[IPBlock]) -> frozenset[str]:
    """Pod IPs (as host CIDRs) and ipBlock CIDRs, normalized to strings."""
    out = {host_cidr(ip) for ip in ips}
    for block in blocks:
        out.update(str(net) for net in block_cidrs(block))
    return frozenset(out)
