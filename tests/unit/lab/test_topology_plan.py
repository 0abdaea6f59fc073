import ipaddress

import pytest

from antrea_lab import cluster
from antrea_lab.labdir import LabDir, LabError
from antrea_lab.node import topology

pytestmark = pytest.mark.unit


def test_one_subnet_puts_every_node_on_192_168_77():
    topo = topology.plan("t", 3)
    assert [n.ip for n in topo.nodes] == ["192.168.77.11", "192.168.77.12", "192.168.77.13"]
    assert {n.gateway for n in topo.nodes} == {topology.GATEWAY_IP}
    assert topo.subnets == ["192.168.77.0/24"]


def test_subnets_split_the_nodes_in_order_each_behind_its_own_router_address():
    topo = topology.plan("t", 3, subnets=2)
    assert [(n.name, n.ip, n.gateway) for n in topo.nodes] == [
        ("node1", "192.168.77.11", "192.168.77.1"),
        ("node2", "192.168.77.12", "192.168.77.1"),
        ("node3", "192.168.78.13", "192.168.78.1")]
    assert topo.subnets == ["192.168.77.0/24", "192.168.78.0/24"]
    five = topology.plan("t", 5, subnets=3)
    by_subnet = {}
    for n in five.nodes:
        by_subnet.setdefault(str(ipaddress.ip_interface(f"{n.ip}/24").network), []).append(n.name)
    assert list(by_subnet.values()) == [["node1", "node2"], ["node3", "node4"], ["node5"]]


def test_a_topology_with_subnets_survives_lab_json():
    topo = topology.plan("t", 2, subnets=2)
    again = topology.Topology.from_dict(topo.to_dict())
    assert again == topo and again.node("node2").gateway == "192.168.78.1"


@pytest.mark.parametrize(("nodes", "subnets"), [(2, 3), (5, 5), (3, 0)])
def test_impossible_subnet_counts_are_refused(nodes, subnets):
    with pytest.raises(ValueError, match="subnets must be between 1 and"):
        topology.plan("t", nodes, subnets)


def test_the_lab_refuses_subnets_the_bridge_cni_cannot_route(tmp_path):
    lab = LabDir("t", root=tmp_path)
    with pytest.raises(LabError, match="underlaySubnets > 1 needs cni antrea"):
        cluster.up(lab, 3, cni="bridge", subnets=2)
    with pytest.raises(LabError, match="underlaySubnets: subnets must be between 1 and 2"):
        cluster.up(lab, 2, cni="antrea", subnets=3)
    assert lab.load() is None  # refused before anything was created
