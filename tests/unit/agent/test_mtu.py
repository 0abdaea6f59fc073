"""Pod MTU: defaultMTU wins; else underlay MTU minus the tunnel driver's overhead."""

from __future__ import annotations

import pytest

from antrea_core.agent.mtu import (
    MTUError,
    limited,
    pod_mtu,
    transport_is_ipv6,
    tunnel_overhead,
)
from antrea_core.config.agent import AgentConfig
from antrea_tunnels.drivers import GRE, VXLAN, Geneve

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("driver", "ipv6", "expected"), [
    (Geneve(), False, 1450),  # 20 IPv4 + 8 UDP + 8 Geneve + 14 inner Ethernet
    (Geneve(), True, 1430),   # 40 IPv6 instead of 20
    (VXLAN(), False, 1450),
    (VXLAN(), True, 1430),
    (GRE(), False, 1458),     # 20 IPv4 + 4 GRE + 4 key + 14
    (GRE(), True, 1438),
])
def test_pod_mtu_is_underlay_minus_tunnel_overhead(driver, ipv6, expected):
    config = AgentConfig.model_validate({"tunnelType": driver.port_type})
    assert pod_mtu(0, 1500, tunnel_overhead(config, driver, ipv6)) == expected


def test_default_mtu_is_used_as_is():
    assert pod_mtu(1400, 9000, 50) == 1400
    assert pod_mtu(1400, None, 50) == 1400


@pytest.mark.parametrize("mode", ["noEncap", "networkPolicyOnly"])
def test_modes_that_never_tunnel_pod_traffic_pay_no_overhead(mode):
    config = AgentConfig.model_validate({"trafficEncapMode": mode})
    assert tunnel_overhead(config, Geneve(), False) == 0


def test_hybrid_mode_pays_the_overhead():
    config = AgentConfig.model_validate({"trafficEncapMode": "hybrid"})
    assert tunnel_overhead(config, Geneve(), False) == 50


def test_jumbo_underlay_gives_jumbo_pods():
    assert pod_mtu(0, 9000, 50) == 8950


def test_unknown_underlay_or_too_small_result_asks_for_default_mtu():
    with pytest.raises(MTUError, match="defaultMTU"):
        pod_mtu(0, None, 50)
    with pytest.raises(MTUError, match="defaultMTU"):
        pod_mtu(0, 600, 50)


def test_tunnels_run_over_ipv6_only_when_the_node_has_no_ipv4_address():
    assert transport_is_ipv6(["fd00::10"]) is True
    assert transport_is_ipv6(["192.168.77.11", "fd00::10"]) is False
    assert transport_is_ipv6([]) is False


def test_plugin_limits_lower_the_pod_mtu_and_none_means_no_limit():
    assert limited(1450, []) == 1450
    assert limited(1450, [None, 1500]) == 1450  # a limit above changes nothing
    assert limited(1450, [1350, None, 1400]) == 1350  # the smallest wins
    with pytest.raises(MTUError, match="limits the pod MTU to 60"):
        limited(1450, [60])
