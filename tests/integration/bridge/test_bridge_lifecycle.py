"""Bridge, gateway, tunnel and pod-port lifecycle against a real userspace OVS in a netns."""

from __future__ import annotations

import subprocess
import time

import pytest

from antrea_core.agent.bridge.interface_store import (
    InterfaceConfig,
    InterfaceStore,
    InterfaceType,
)
from antrea_core.agent.bridge.lifecycle import (
    ALL_OPENFLOW,
    GATEWAY_OFPORT,
    TUNNEL_OFPORT,
    OVSBridge,
    ensure_bridge,
)
from antrea_core.agent.bridge.ovsdb import OVSDB, InterfaceError, OVSDBError
from antrea_tunnels.drivers import GRE, STT, VXLAN, Geneve

pytestmark = pytest.mark.integration


def netdev_bridge(node) -> OVSBridge:
    return ensure_bridge(node.ovsdb, "br-int", datapath_type="netdev")


def test_ensure_bridge_twice_is_idempotent_on_netdev(node):
    br = netdev_bridge(node)
    node.ovs.vsctl("set", "Bridge", "br-int", "other_config:foreign-key=kept")
    first_uuid = node.column("Bridge", "br-int", "_uuid")
    ensure_bridge(node.ovsdb, "br-int", datapath_type="netdev")

    assert node.ovs.vsctl("list-br").stdout.split() == ["br-int"]
    assert node.column("Bridge", "br-int", "_uuid") == first_uuid
    assert node.ovs.vsctl("list-ports", "br-int").stdout.split() == []
    assert node.column("Bridge", "br-int", "datapath_type") == "netdev"
    assert br.datapath_type() == "netdev"
    assert node.column("Bridge", "br-int", "protocols") == list(ALL_OPENFLOW)
    assert node.column("Bridge", "br-int", "fail_mode") == "secure"
    assert node.column("Bridge", "br-int", "mcast_snooping_enable") is False
    assert node.column("Bridge", "br-int", "other_config") == {
        "disable-in-band": "true", "foreign-key": "kept"}
    # vswitchd built it: OpenFlow 1.5 answers, and secure mode installed no NORMAL flow.
    flows = node.ovs.ofctl("-O", "OpenFlow15", "dump-flows", "br-int").stdout
    assert "actions=" not in flows
    assert "netdev@ovs-netdev" in node.ovs.appctl("dpif/show").stdout


def test_gateway_port_is_internal_with_pinned_mac_and_fixed_ofport(node):
    br = netdev_bridge(node)
    gw = br.ensure_gateway_port("antrea-gw0", mac="02:aa:bb:cc:dd:ee", mtu=1450)
    assert gw == InterfaceConfig("antrea-gw0", InterfaceType.GATEWAY, GATEWAY_OFPORT,
                                 "02:aa:bb:cc:dd:ee", ovs_type="internal")
    assert node.column("Interface", "antrea-gw0", "type") == "internal"
    assert node.column("Interface", "antrea-gw0", "ofport") == GATEWAY_OFPORT
    assert node.column("Interface", "antrea-gw0", "external_ids") == {
        "antrea-type": "gateway"}
    [link] = node.ip_json("link", "show", "antrea-gw0")
    assert link["address"] == "02:aa:bb:cc:dd:ee"
    assert link["mtu"] == 1450
    # Again without a MAC: nothing changes.
    again = br.ensure_gateway_port("antrea-gw0", mtu=1450)
    assert again == gw


def test_gateway_without_mac_gets_a_stable_locally_administered_one(node):
    br = netdev_bridge(node)
    gw = br.ensure_gateway_port()
    assert int(gw.mac.split(":")[0], 16) & 0x03 == 0x02
    assert node.column("Interface", "antrea-gw0", "mac") == gw.mac
    assert br.ensure_gateway_port().mac == gw.mac


@pytest.mark.parametrize(
    ("driver", "dst_port", "csum", "expected"),
    [
        (Geneve(), 0, False, {"remote_ip": "flow", "key": "flow"}),
        (Geneve(), 6082, True,
         {"remote_ip": "flow", "key": "flow", "dst_port": "6082", "csum": "true"}),
        (VXLAN(), 4789, False, {"remote_ip": "flow", "key": "flow"}),
        (VXLAN(), 8472, False, {"remote_ip": "flow", "key": "flow", "dst_port": "8472"}),
        (GRE(), 0, True, {"remote_ip": "flow", "key": "flow", "csum": "true"}),
    ],
    ids=["geneve", "geneve-port-csum", "vxlan", "vxlan-8472", "gre-csum"],
)
def test_tunnel_port_gets_ofport_and_driver_options(node, driver, dst_port, csum, expected):
    br = netdev_bridge(node)
    tun = br.ensure_tunnel_port("antrea-tun0", driver, dst_port=dst_port, csum=csum)
    assert tun.ofport == TUNNEL_OFPORT
    assert tun.ovs_type == driver.port_type
    assert node.column("Interface", "antrea-tun0", "type") == driver.port_type
    assert node.column("Interface", "antrea-tun0", "options") == expected
    assert node.column("Interface", "antrea-tun0", "ofport") == TUNNEL_OFPORT
    assert node.column("Interface", "antrea-tun0", "error") == []
    assert br.ensure_tunnel_port("antrea-tun0", driver, dst_port=dst_port, csum=csum) == tun


def test_changed_tunnel_type_reconfigures_port_and_drops_old_options(node):
    br = netdev_bridge(node)
    br.ensure_tunnel_port("antrea-tun0", Geneve(), dst_port=6082, csum=True)
    tun = br.ensure_tunnel_port("antrea-tun0", VXLAN())
    assert tun.ofport == TUNNEL_OFPORT
    assert node.column("Interface", "antrea-tun0", "type") == "vxlan"
    assert node.column("Interface", "antrea-tun0", "options") == {
        "remote_ip": "flow", "key": "flow"}
    assert node.ovs.vsctl("list-ports", "br-int").stdout.split() == ["antrea-tun0"]


def test_ovs_itself_accepts_stt_on_netdev_without_error(node):
    """Why we refuse STT ourselves: OVS 3.1 gives no interface error to check."""
    netdev_bridge(node)
    node.ovs.vsctl("add-port", "br-int", "stt0", "--", "set", "Interface", "stt0",
                   "type=stt", "options:remote_ip=flow", "options:key=flow")
    assert node.column("Interface", "stt0", "ofport") > 0
    assert node.column("Interface", "stt0", "error") == []


def test_stt_on_netdev_is_refused_with_clear_error_and_no_port(node):
    br = netdev_bridge(node)
    with pytest.raises(OVSDBError) as err:
        br.ensure_tunnel_port("antrea-tun0", STT())
    message = str(err.value)
    assert "antrea-tun0" in message and "stt" in message
    assert "kernel datapath" in message and "datapath_type=netdev" in message
    assert node.ovs.vsctl("list-ports", "br-int").stdout.split() == []


def test_pod_port_without_device_fails_with_ovs_error_text_and_is_removed(node):
    br = netdev_bridge(node)
    with pytest.raises(InterfaceError) as err:
        br.add_pod_port("nosuchdev0", {"container-id": "c0"})
    assert list(err.value.failed) == ["nosuchdev0"]
    assert "No such device" in err.value.failed["nosuchdev0"]
    assert "nosuchdev0" in str(err.value) and "No such device" in str(err.value)
    assert node.ovs.vsctl("list-ports", "br-int").stdout.split() == []


def test_batch_with_one_bad_device_keeps_the_good_ports(node):
    br = netdev_bridge(node)
    node.ip("link", "add", "good0", "type", "veth", "peer", "name", "good0-c")
    node.ip("link", "set", "good0", "up")
    with pytest.raises(InterfaceError) as err:
        br.add_pod_ports({"good0": {"container-id": "g"}, "bad0": {"container-id": "b"}})
    assert set(err.value.failed) == {"bad0"}
    assert err.value.ofports == {"good0": node.column("Interface", "good0", "ofport")}
    assert node.ovs.vsctl("list-ports", "br-int").stdout.split() == ["good0"]


def test_delete_pod_port_is_idempotent(node):
    br = netdev_bridge(node)
    node.ip("link", "add", "one0", "type", "veth", "peer", "name", "one0-c")
    ofport = br.add_pod_port("one0", {"container-id": "c1"})
    assert ofport > 0
    assert br.add_pod_port("one0", {"container-id": "c1", "pod-name": "p"}) == ofport
    assert node.column("Interface", "one0", "external_ids")["pod-name"] == "p"
    br.delete_pod_port("one0")
    br.delete_pod_port("one0")
    assert node.ovs.vsctl("list-ports", "br-int").stdout.split() == []
    assert node.ovs.vsctl("--if-exists", "get", "Interface", "one0", "name").stdout == ""


def test_port_of_another_bridge_is_not_taken_over(node):
    br = netdev_bridge(node)
    ensure_bridge(node.ovsdb, "br-other", datapath_type="netdev")
    node.ovs.vsctl("add-port", "br-other", "shared0", "--", "set", "Interface", "shared0",
                   "type=internal")
    with pytest.raises(OVSDBError, match="belongs to bridge br-other"):
        br.add_pod_port("shared0", {})


def test_200_pod_ports_in_one_batch_survive_an_agent_restart(node):
    n = 200
    br = netdev_bridge(node)
    gw = br.ensure_gateway_port()
    tun = br.ensure_tunnel_port("antrea-tun0", Geneve())
    script = "".join(f"link add vp{i} type veth peer name vc{i}\nlink set vp{i} up\n"
                     for i in range(n))
    subprocess.run(["ip", "-n", node.netns, "-batch", "-"], input=script, text=True,
                   check=True)
    pods = [InterfaceConfig.container(f"vp{i}", f"container-{i}", f"ns{i % 7}", f"pod-{i}",
                                      [f"10.244.{i // 250}.{i % 250 + 2}"],
                                      f"02:00:00:00:{i // 256:02x}:{i % 256:02x}")
            for i in range(n)]

    t0 = time.monotonic()
    ofports = br.add_pod_ports({p.name: p.external_ids() for p in pods})
    t_add = time.monotonic() - t0
    assert len(ofports) == n and len(set(ofports.values())) == n
    assert GATEWAY_OFPORT not in ofports.values() and TUNNEL_OFPORT not in ofports.values()

    # Agent restart: the old connection goes away, a NEW one rebuilds the store.
    node.ovsdb.close()
    t0 = time.monotonic()
    fresh = OVSDB(node.ovs.db_sock)
    try:
        store = InterfaceStore()
        count = store.rebuild(OVSBridge(fresh, "br-int").interfaces())
        t_rebuild = time.monotonic() - t0
        assert count == n + 2
        assert store.gateway() == gw
        assert store.tunnel() == tun
        for p in pods:
            found = store.get_container(p.container_id)
            assert found == p.with_ofport(ofports[p.name])
            assert store.get_by_ofport(ofports[p.name]) is found
            assert found in store.get_pod(p.pod_namespace, p.pod_name)
        assert len(store.pod_interfaces()) == n

        t0 = time.monotonic()
        deleted = OVSBridge(fresh, "br-int").delete_pod_ports(p.name for p in pods)
        t_delete = time.monotonic() - t0
        assert deleted == n
        assert sorted(node.ovs.vsctl("list-ports", "br-int").stdout.split()) == [
            "antrea-gw0", "antrea-tun0"]
    finally:
        fresh.close()
    print(f"\n[bridge] {n} veth pod ports: batch add {t_add:.2f}s, rebuild from new "
          f"connection {t_rebuild:.2f}s, batch delete {t_delete:.2f}s")
