import ipaddress

import pytest

from antrea_core.agent.noderoute import RoutePolicy, _direct_next_hops
from antrea_core.plugins.context import NodeInfo

pytestmark = pytest.mark.unit

LOCAL = (ipaddress.ip_network("192.168.77.0/24"),)


def _node(ip: str, *cidrs: str, ips: tuple[str, ...] = ()) -> NodeInfo:
    return NodeInfo("peer", (ip, *ips), cidrs or ("10.244.9.0/24",))


@pytest.mark.parametrize(("mode", "peer", "direct"), [
    ("encap", "192.168.77.12", False),
    ("noEncap", "192.168.77.12", True),
    ("noEncap", "192.168.78.13", True),  # noEncap trusts the underlay to route podCIDRs
    ("hybrid", "192.168.77.12", True),
    ("hybrid", "192.168.78.13", False),
])
def test_the_mode_decides_which_peers_are_routed_without_a_tunnel(mode, peer, direct):
    assert RoutePolicy(mode, LOCAL).direct(_node(peer)) is direct


def test_hybrid_without_a_known_local_subnet_tunnels_everything():
    assert not RoutePolicy("hybrid", ()).direct(_node("192.168.77.12"))


def test_direct_next_hops_pair_each_pod_cidr_with_the_peer_ip_of_its_family():
    dual = _node("192.168.77.12", "10.244.9.0/24", "fd00:10:244:9::/64",
                 ips=("fd00::12",))
    assert _direct_next_hops(dual) == [("10.244.9.0/24", "192.168.77.12"),
                                       ("fd00:10:244:9::/64", "fd00::12")]
    v4_only = _node("192.168.77.12", "10.244.9.0/24", "fd00:10:244:9::/64")
    assert _direct_next_hops(v4_only) == [("10.244.9.0/24", "192.168.77.12")]
