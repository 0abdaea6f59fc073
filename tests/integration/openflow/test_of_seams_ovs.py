"""The connection's feature seams against a real userspace ovs-vswitchd: ordered replay
after a vswitchd restart, packet-ins dispatched by the cookie's feature id, and select
groups hashing the 5-tuple (UDP ports included)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from os_ken.lib.packet import ethernet, ipv4, packet, udp
from os_ken.ofproto import nx_actions  # noqa: F401  (registers NX actions on the parser)
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp
from waiting import wait_for

from antrea_core.agent.openflow.bridge_client import OFBridge, assign_feature_ids
from antrea_core.agent.openflow.connection import CODEC, OFConnection, PacketIn, ReplayOrder
from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.flows import FIVE_TUPLE, GOTO_NEXT, Bucket, Flow, Group
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_lab import processes
from antrea_lab.node.ovs import NodeOVS

pytestmark = pytest.mark.integration

LAYOUT = PipelineLayout.build(core_tables())
NX_IN_PORT = 0xFFF8
POD = "pod-networking"
POLICY = "network-policy"
SVC = "ServiceFeature"
_counter = iter(range(1000))


class Node:
    def __init__(self, ovs: NodeOVS) -> None:
        self.ovs = ovs
        self.mgmt = str(ovs.run_dir / "br-int.mgmt")

    def connect(self, **kwargs: Any) -> OFConnection:
        conn = OFConnection(self.mgmt, **kwargs)
        conn.start(timeout=20)
        return conn


@pytest.fixture
def node() -> Iterator[Node]:
    base = Path(tempfile.mkdtemp(prefix="hJof", dir="/tmp"))
    netns = f"hJ-of{os.getpid() % 10000}-{next(_counter)}"
    subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
    ovs = NodeOVS(netns, base / "ovs")
    try:
        ovs.start()
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int",
                  "datapath_type=netdev", "protocols=OpenFlow15", "fail_mode=secure")
        yield Node(ovs)
    finally:
        ovs.stop()
        subprocess.run(["ip", "netns", "delete", netns], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def udp_frame(sport: int) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(src="aa:bb:cc:00:00:01", dst="aa:bb:cc:00:00:02"))
    pkt.add_protocol(ipv4.ipv4(src="10.244.0.2", dst="10.96.0.10", proto=17))
    pkt.add_protocol(udp.udp(src_port=sport, dst_port=53))
    pkt.serialize()
    return bytes(pkt.data)


def packet_out(data: bytes, reg1: int) -> Any:
    """Into the Output table with reg1 preset."""
    return ofpp.OFPPacketOut(
        CODEC, buffer_id=ofp.OFP_NO_BUFFER, match=ofpp.OFPMatch(in_port=ofp.OFPP_CONTROLLER),
        actions=[ofpp.OFPActionSetField(reg1=reg1),
                 ofpp.NXActionResubmitTable(in_port=NX_IN_PORT,
                                            table_id=LAYOUT.table_id("Output"))],
        data=data)


def to_controller(userdata: bytes) -> Any:
    return ofpp.NXActionController2(max_len=ofp.OFPCML_NO_BUFFER,
                                    reason=ofp.OFPR_APPLY_ACTION, userdata=userdata)


def test_vswitchd_restart_replays_policy_and_features_before_forwarding(node: Node):
    conn = node.connect(retry_interval=0.1)
    bridge = OFBridge(LAYOUT, conn, feature_ids=assign_feature_ids([SVC]))
    policy = [Flow("IngressRule", 100, {"reg1": 2}, goto=GOTO_NEXT)]
    service = [Flow("L3Forwarding", 150, {"eth_type": 0x0800, "ipv4_dst": "10.96.0.10"},
                    goto=GOTO_NEXT)]
    forwarding = [Flow("Output", 200, {"reg1": 2}, actions=(ofpp.OFPActionOutput(2),))]
    seen: dict[str, int] = {}
    done = threading.Event()

    def replay_forwarding(_c: OFConnection) -> None:
        # What a packet could meet right before forwarding comes back.
        seen["policy"] = len(bridge.dump_flows(POLICY))
        seen["service"] = len(bridge.dump_flows(SVC))
        bridge.install_pipeline()
        bridge.install(forwarding, POD)
        done.set()

    def broken(_c: OFConnection) -> None:
        raise RuntimeError("a feature that cannot replay")

    try:
        # Registered in the opposite order of the replay order on purpose.
        conn.add_reconnect_listener(replay_forwarding, order=ReplayOrder.FORWARDING)
        conn.add_reconnect_listener(broken, order=ReplayOrder.FEATURES, name="broken")
        conn.add_reconnect_listener(lambda c: bridge.install(service, SVC),
                                    order=ReplayOrder.FEATURES)
        conn.add_reconnect_listener(lambda c: bridge.install(policy, POLICY),
                                    order=ReplayOrder.POLICY)
        bridge.install_pipeline()
        for items, feature in ((policy, POLICY), (service, SVC), (forwarding, POD)):
            bridge.install(items, feature)
        before = len(bridge.dump_flows())
        pid = node.ovs.running_pid("ovs-vswitchd")
        assert pid is not None
        processes.stop(pid, "ovs-vswitchd", 10)
        wait_for(lambda: not conn.connected, 10, "the connection to notice")
        node.ovs.start()
        assert done.wait(30), "forwarding was not replayed"
        assert seen == {"policy": 1, "service": 1}
        assert len(bridge.dump_flows()) == before
    finally:
        conn.close()


def test_packet_ins_reach_only_the_feature_whose_flow_sent_them(node: Node):
    got: dict[str, list[PacketIn]] = {POLICY: [], SVC: [], "unclaimed": []}
    both = threading.Event()

    def handler(feature: str) -> Any:
        def handle(pin: PacketIn) -> None:
            got[feature].append(pin)
            if got[POLICY] and got[SVC]:
                both.set()
        return handle

    conn = node.connect(on_packet_in=handler("unclaimed"))
    try:
        bridge = OFBridge(LAYOUT, conn, feature_ids=assign_feature_ids([SVC]))
        conn.add_packet_in_handler(bridge.feature_id(POLICY), handler(POLICY))
        conn.add_packet_in_handler(bridge.feature_id(SVC), handler(SVC))
        bridge.install_pipeline()
        bridge.install([Flow("Output", 120, {"reg1": 0xA1},
                             actions=(to_controller(b"pol\0"),))], POLICY)
        bridge.install([Flow("Output", 120, {"reg1": 0xA2},
                             actions=(to_controller(b"svc\0"),))], SVC)
        conn.transaction([packet_out(udp_frame(1000), 0xA1),
                          packet_out(udp_frame(1001), 0xA2)])
        assert both.wait(10), f"packet-ins missing: {got}"
    finally:
        conn.close()
    assert [p.userdata for p in got[POLICY]] == [b"pol\0"]
    assert [p.userdata for p in got[SVC]] == [b"svc\0"]
    assert got["unclaimed"] == []


def test_select_group_hash_spreads_udp_flows_and_keeps_each_flow_on_one_bucket(node: Node):
    """Each bucket marks reg2 with its index and resubmits to a flow sending the packet
    to the agent; packets differ by UDP source port only, which OVS's default dp_hash
    would not look at. (A controller action directly in a bucket sends nothing.)"""
    seen: list[int] = []
    lock = threading.Lock()

    def on_packet_in(pin: PacketIn) -> None:
        with lock:
            seen.append(int(pin.fields.get("reg2") or 0))  # 0 is left out of the fields

    conn = node.connect()
    try:
        bridge = OFBridge(LAYOUT, conn, feature_ids=assign_feature_ids([SVC]))
        conn.add_packet_in_handler(bridge.feature_id(SVC), on_packet_in)
        output = LAYOUT.table_id("Output")
        buckets = tuple(Bucket((ofpp.OFPActionSetField(reg2=i),
                                ofpp.NXActionResubmitTable(in_port=NX_IN_PORT,
                                                           table_id=output)))
                        for i in range(4))
        group = Group(0x1234, "select", buckets, selection_method="hash",
                      selection_fields=FIVE_TUPLE)
        bridge.install_pipeline()
        bridge.install([
            group,
            Flow("Output", 120, {"reg1": 0xB0},
                 actions=(ofpp.OFPActionSetField(reg1=0xB1), ofpp.OFPActionGroup(0x1234))),
            Flow("Output", 120, {"reg1": 0xB1}, actions=(to_controller(b"grp\0"),)),
        ], SVC)
        groups = node.ovs.ofctl("-O", "OpenFlow15", "dump-groups", "br-int").stdout
        assert "selection_method=hash,fields(" in groups, groups
        sports = range(20000, 20032)
        conn.transaction([packet_out(udp_frame(sport), 0xB0) for sport in sports])
        wait_for(lambda: len(seen) >= len(sports), 20, "one packet-in per packet")
        spread = set(seen)
        seen.clear()
        conn.transaction([packet_out(udp_frame(20000), 0xB0) for _ in range(8)])
        wait_for(lambda: len(seen) >= 8, 20, "one packet-in per packet")
        same_flow = set(seen)
    finally:
        conn.close()
    assert len(spread) >= 3, spread  # 32 flows over 4 buckets
    assert len(same_flow) == 1, same_flow
