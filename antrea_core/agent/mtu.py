"""The pod MTU (also the gateway's): ``defaultMTU`` if set, else the underlay MTU minus the
encapsulation overhead of the tunnel driver.

Why subtract: with the userspace datapath a pod that sends full 1500-byte frames through
a Geneve tunnel on a 1500-byte underlay gets its TCP connections stalled (DESIGN §5,
*measured*): the encapsulated packet no longer fits and nothing tells the pod. Only
traffic that may be encapsulated counts, so noEncap and networkPolicyOnly pods get the
underlay MTU as is; hybrid pods may be tunnelled, so they pay the overhead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from antrea_core.config.agent import MAX_MTU, MIN_MTU


class MTUError(ValueError):
    """The pod MTU cannot be determined or would be unusable; says what to configure."""


def transport_is_ipv6(node_ips: Sequence[str]) -> bool:
    """Tunnels run over IPv4 when the node has an IPv4 transport address, else over IPv6."""
    versions = {ipaddress.ip_address(ip).version for ip in node_ips}
    return 4 not in versions and 6 in versions


def tunnel_overhead(config: Any, driver: Any, ipv6: bool) -> int:
    """Bytes the tunnel adds in front of a pod's packet; 0 when pods are never tunnelled."""
    if driver is None or not config.tunnel_enabled:
        return 0
    return int(driver.overhead(ipv6))


def pod_mtu(default_mtu: int, underlay_mtu: int | None, overhead: int) -> int:
    """``default_mtu`` when non-zero (the operator knows best), else underlay - overhead."""
    if default_mtu:
        return default_mtu
    if underlay_mtu is None:
        raise MTUError("cannot discover the underlay MTU: set defaultMTU (or "
                       "transportInterface) in antrea-agent.conf")
    mtu = underlay_mtu - overhead
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise MTUError(f"underlay MTU {underlay_mtu} minus tunnel overhead {overhead} gives "
                       f"{mtu}, outside {MIN_MTU}..{MAX_MTU}; set defaultMTU")
    return mtu


def limited(mtu: int, limits: Iterable[int | None]) -> int:
    """`mtu` lowered to the smallest plugin limit (`antrea_pod_mtu_limit`; None = no
    limit). A limit below the minimum is refused like a too small underlay."""
    found = [int(limit) for limit in limits if limit]
    if not found or min(found) >= mtu:
        return mtu
    lowest = min(found)
    if lowest < MIN_MTU:
        raise MTUError(f"a plugin limits the pod MTU to {lowest}, below {MIN_MTU}; "
                       "set defaultMTU")
    return lowest
