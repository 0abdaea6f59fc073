"""CNI results: the pod-interface pieces, version conversion, host interface names."""

from __future__ import annotations

import ipaddress

import pytest

from antrea_core.agent.ipam.allocator import AllocatedIP
from antrea_core.agent.podnet.interface import PodInterface, PodInterfaceSpec, host_interface_name
from antrea_core.cni.main import convert_result

pytestmark = pytest.mark.unit


def dual_stack_interface() -> PodInterface:
    ips = (AllocatedIP(ipaddress.ip_interface("10.10.1.5/24"), ipaddress.ip_address("10.10.1.1")),
           AllocatedIP(ipaddress.ip_interface("fd00:10:1::5/64"),
                       ipaddress.ip_address("fd00:10:1::1")))
    spec = PodInterfaceSpec(container_id="c1", netns="/var/run/netns/cni-1", ifname="eth0",
                            host_ifname="web-0-1a2b3c", ips=ips, mtu=1450)
    return PodInterface(spec=spec, host_index=7, host_mac="aa:bb:cc:00:00:01",
                        mac="0a:58:0a:0a:01:05")


def test_result_names_host_and_sandbox_interfaces_and_points_ips_at_the_pod_side():
    result = dual_stack_interface().cni_result()
    assert result["interfaces"] == [
        {"name": "web-0-1a2b3c", "mac": "aa:bb:cc:00:00:01"},
        {"name": "eth0", "mac": "0a:58:0a:0a:01:05", "sandbox": "/var/run/netns/cni-1"},
    ]
    assert result["ips"] == [
        {"address": "10.10.1.5/24", "gateway": "10.10.1.1", "interface": 1},
        {"address": "fd00:10:1::5/64", "gateway": "fd00:10:1::1", "interface": 1},
    ]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.10.1.1"},
                                {"dst": "::/0", "gw": "fd00:10:1::1"}]


def test_conversion_to_0_4_adds_ip_versions_and_1_0_keeps_the_shape():
    result = {"cniVersion": "1.0.0", **dual_stack_interface().cni_result()}
    old = convert_result(result, "0.4.0")
    assert old["cniVersion"] == "0.4.0"
    assert [ip["version"] for ip in old["ips"]] == ["4", "6"]
    new = convert_result(result, "1.0.0")
    assert all("version" not in ip for ip in new["ips"])
    assert "version" not in result["ips"][0]  # the input is not modified


def test_host_interface_name_is_short_stable_and_distinguishes_pods():
    name = host_interface_name("kube-system", "coredns-787d4945fb-x2lkq")
    assert name.startswith("coredns-") and len(name) == 15
    assert name == host_interface_name("kube-system", "coredns-787d4945fb-x2lkq")
    assert name != host_interface_name("default", "coredns-787d4945fb-x2lkq")
    # Plain concatenation would make these two equal ("a-b-c").
    assert host_interface_name("a-b", "c") != host_interface_name("a", "b-c")
    assert len(host_interface_name("ns", "p")) <= 15
