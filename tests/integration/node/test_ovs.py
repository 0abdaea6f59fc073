"""A per-node userspace Open vSwitch inside a netns we create."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from antrea_lab.node import netns
from antrea_lab.node.ovs import NodeOVS
from antrea_lab.processes import is_ours as pid_is

pytestmark = pytest.mark.integration


@pytest.fixture
def node_ns():
    name = f"antrea-h4o{os.getpid() % 10000}-node1"
    netns.ensure(name)
    yield name
    netns.delete(name)


def test_ovs_starts_in_netns_serves_netdev_bridge_and_stops(node_ns: str, tmp_path: Path):
    ovs = NodeOVS(node_ns, tmp_path / "ovs")
    pids = ovs.start()
    try:
        assert pid_is(pids.ovsdb_server, "ovsdb-server")
        assert pid_is(pids.ovs_vswitchd, "ovs-vswitchd")
        own_netns = os.readlink("/proc/self/ns/net")
        ns_of = os.readlink(f"/proc/{pids.ovs_vswitchd}/ns/net")
        assert ns_of != own_netns
        assert os.stat(f"/run/netns/{node_ns}").st_ino == os.stat(
            f"/proc/{pids.ovs_vswitchd}/ns/net").st_ino
        # Starting again reuses the running daemons.
        assert ovs.start() == pids
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
        assert ovs.vsctl("list-br").stdout.split() == ["br-int"]
        assert ovs.vsctl("get", "bridge", "br-int", "datapath_type").stdout.strip() == "netdev"
        flows = ovs.ofctl("dump-flows", "br-int").stdout
        assert "actions=NORMAL" in flows
        assert "netdev@ovs-netdev" in ovs.appctl("dpif/show").stdout
        assert (tmp_path / "ovs" / "log" / "ovs-vswitchd.log").exists()
    finally:
        stopped = ovs.stop()
    assert sorted(stopped) == sorted([pids.ovsdb_server, pids.ovs_vswitchd])
    assert not pid_is(pids.ovsdb_server, "ovsdb-server")
    assert not pid_is(pids.ovs_vswitchd, "ovs-vswitchd")
    assert ovs.pids() is None
