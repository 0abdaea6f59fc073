"""OFConnection + OFBridge against a real userspace ovs-vswitchd in a netns."""

from __future__ import annotations

import logging
import subprocess
import threading
import time

import pytest
from os_ken.lib.packet import ethernet, ipv4, packet, udp
from os_ken.ofproto import nx_actions  # noqa: F401  (registers NX actions on the parser)
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp
from waiting import wait_for

from antrea_core.agent.openflow.bridge_client import (
    CORE_FEATURE_IDS,
    OFBridge,
    make_cookie,
    split_cookie,
)
from antrea_core.agent.openflow.connection import (
    CODEC,
    BundleError,
    OFPErrorReply,
    PacketIn,
    VersionMismatch,
)
from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.flows import GOTO_NEXT, Bucket, Flow, Group
from antrea_core.agent.openflow.pipeline import PipelineLayout
from antrea_lab import processes

pytestmark = pytest.mark.integration
log = logging.getLogger("antrea.tests.openflow")

LAYOUT = PipelineLayout.build(core_tables())
NX_IN_PORT = 0xFFF8  # NX actions carry OpenFlow 1.0 16-bit port numbers
POD = "pod-networking"
POLICY = "network-policy"




def cookie_of(feature: str, round_num: int = 1, seq: int = 0) -> str:
    return hex(make_cookie(CORE_FEATURE_IDS[feature], round_num, seq))


def sample_flows() -> list[Flow]:
    return [
        Flow("Classifier", 200, {"in_port": 1}, goto=GOTO_NEXT),
        Flow("SpoofGuard", 200, {"in_port": 1, "eth_type": 0x0800,
                                 "ipv4_src": "10.244.0.2"}, goto=GOTO_NEXT),
        Flow("L2ForwardingCalc", 200, {"eth_dst": "aa:bb:cc:00:00:02"},
             actions=(ofpp.OFPActionSetField(reg1=2),), goto="Output"),
        Flow("Output", 200, {"reg1": 2}, actions=(ofpp.OFPActionOutput(2),)),
    ]


def test_pipeline_and_flows_land_in_their_tables_with_feature_cookies(sandbox):
    conn = sandbox.connect()
    try:
        bridge = OFBridge(LAYOUT, conn)
        bridge.install_pipeline()
        bridge.install(sample_flows(), POD)
        bridge.install([Flow("IngressRule", 100, {"reg1": 2}, goto=GOTO_NEXT)], POLICY,
                       sequence=42)
    finally:
        conn.close()
    flows = sandbox.dump_flows()
    misses = {int(f["table"]): f for f in flows if f["priority"] == "0"}
    assert sorted(misses) == list(range(len(LAYOUT)))
    for table in LAYOUT.tables():
        miss = misses[table.table_id]
        assert miss["cookie"] == cookie_of("pipeline")
        if table.spec.missing == "next" and table.next_table is not None:
            assert miss["actions"] == f"goto_table:{table.table_id + 1}"
        else:
            assert miss["actions"] == "drop"
    ours = {(int(f["table"]), f["match"]): f for f in flows if f["priority"] != "0"}
    classifier = ours[(LAYOUT.table_id("Classifier"), "in_port=1")]
    assert classifier["cookie"] == cookie_of(POD)
    assert classifier["actions"] == f"goto_table:{LAYOUT.next_table_id('Classifier')}"
    l2 = ours[(LAYOUT.table_id("L2ForwardingCalc"), "dl_dst=aa:bb:cc:00:00:02")]
    assert l2["actions"] == (f"set_field:0x2->reg1,goto_table:{LAYOUT.table_id('Output')}")
    assert ours[(LAYOUT.table_id("Output"), "reg1=0x2")]["actions"] == "output:2"
    rule = ours[(LAYOUT.table_id("IngressRule"), "reg1=0x2")]
    assert rule["cookie"] == cookie_of(POLICY, seq=42)


def test_dump_flows_filters_by_feature_cookie_and_names_tables(sandbox):
    conn = sandbox.connect()
    try:
        bridge = OFBridge(LAYOUT, conn)
        bridge.install_pipeline()
        bridge.install(sample_flows(), POD)
        dumped = bridge.dump_flows(POD)
        everything = bridge.dump_flows()
    finally:
        conn.close()
    assert sorted((f.table, f.priority) for f in dumped) == sorted(
        (f.table, f.priority) for f in sample_flows())
    assert {(f.feature, f.round, f.sequence) for f in dumped} == {(POD, 1, 0)}
    output = next(f for f in dumped if f.table == "Output")
    assert output.match == {"reg1": 2}
    assert len(everything) == len(dumped) + len(LAYOUT)


@pytest.mark.parametrize("bad, type_name, code_name", [
    # Fails only against the tables, at commit: OVS rolls the whole bundle back.
    (Flow("Output", 190, {"reg1": 7}, actions=(ofpp.OFPActionGroup(4242),)),
     "OFPET_BAD_ACTION", "OFPBAC_BAD_OUT_GROUP"),
    # Malformed, refused when added: the barrier before COMMIT catches it, we DISCARD.
    (Flow("Output", 190, {"tcp_dst": 80}), "OFPET_BAD_MATCH", "OFPBMC_BAD_PREREQ"),
], ids=["commit-time", "add-time"])
def test_bad_flow_in_bundle_commits_nothing_and_error_names_it(sandbox, bad, type_name,
                                                                 code_name):
    conn = sandbox.connect()
    try:
        bridge = OFBridge(LAYOUT, conn)
        with pytest.raises(BundleError) as info:
            bridge.install([*sample_flows(), bad], POD)
        error = info.value.errors[0]
        assert isinstance(error, OFPErrorReply)
        assert (error.type_name, error.code_name) == (type_name, code_name)
        assert "priority=190" in str(info.value)
        assert sandbox.dump_flows() == []
        # The connection stays usable after a failed bundle.
        bridge.install(sample_flows(), POD)
    finally:
        conn.close()
    assert len(sandbox.dump_flows()) == len(sample_flows())


def test_delete_stale_round_keeps_the_new_round(sandbox):
    conn = sandbox.connect()
    try:
        old = OFBridge(LAYOUT, conn, round_num=1)
        old.install_pipeline()
        old.install(sample_flows(), POD)
        old.install([Flow("IngressRule", 100, {"reg1": 2}, goto=GOTO_NEXT)], POLICY)
        # The restarted agent: round 2 reinstalls all but the SpoofGuard flow, adds one.
        new = OFBridge(LAYOUT, conn, round_num=2)
        kept = [f for f in sample_flows() if f.table != "SpoofGuard"]
        added = Flow("Classifier", 200, {"in_port": 3}, goto=GOTO_NEXT)
        new.install([*kept, added], POD)
        new.delete_stale_rounds(POD)
        pod_flows = new.dump_flows(POD)
        assert {f.round for f in pod_flows} == {2}
        assert sorted((f.table, str(f.match)) for f in pod_flows) == sorted(
            (f.table, str(dict(f.match))) for f in [*kept, added])
        # Other features' old rounds are untouched until a full sweep.
        assert [f.round for f in new.dump_flows(POLICY)] == [1]
        assert len(new.dump_flows("pipeline")) == len(LAYOUT)
        new.install_pipeline()
        new.delete_stale_rounds()
        assert new.dump_flows(POLICY) == []
        assert {split_cookie(f.cookie)[1] for f in new.dump_flows()} == {2}
    finally:
        conn.close()


def test_delete_by_flow_and_by_match_touches_only_that_feature(sandbox):
    conn = sandbox.connect()
    try:
        bridge = OFBridge(LAYOUT, conn)
        flows = sample_flows()
        bridge.install(flows, POD)
        same_match_other_feature = Flow("IngressRule", 100, {"reg1": 2}, goto=GOTO_NEXT)
        bridge.install([same_match_other_feature], POLICY)
        bridge.delete([flows[0]], POD)
        assert [f.table for f in bridge.dump_flows(POD)].count("Classifier") == 0
        bridge.delete({"reg1": 2}, POD)  # the Output flow, not the policy's
        assert "Output" not in [f.table for f in bridge.dump_flows(POD)]
        assert [f.table for f in bridge.dump_flows(POLICY)] == ["IngressRule"]
        bridge.delete([same_match_other_feature], POD)  # wrong feature: kept
        assert len(bridge.dump_flows(POLICY)) == 1
    finally:
        conn.close()


def test_replace_feature_flows_swaps_the_whole_set(sandbox):
    conn = sandbox.connect()
    try:
        bridge = OFBridge(LAYOUT, conn)
        bridge.install(sample_flows(), POD)
        bridge.install([Flow("IngressRule", 100, {"reg1": 2}, goto=GOTO_NEXT)], POLICY)
        replacement = [Flow("Classifier", 210, {"in_port": 9}, goto=GOTO_NEXT)]
        bridge.replace_feature_flows(POD, replacement)
        assert [(f.table, f.priority) for f in bridge.dump_flows(POD)] == [("Classifier", 210)]
        assert len(bridge.dump_flows(POLICY)) == 1
        bad = [Flow("Output", 1, {}, actions=(ofpp.OFPActionGroup(99),))]
        with pytest.raises(BundleError):
            bridge.replace_feature_flows(POD, bad)
        assert [(f.table, f.priority) for f in bridge.dump_flows(POD)] == [("Classifier", 210)]
    finally:
        conn.close()


def test_groups_are_installed_before_flows_using_them_and_reinstall_is_idempotent(sandbox):
    conn = sandbox.connect()
    try:
        bridge = OFBridge(LAYOUT, conn)
        group = Group(7, "select", (Bucket((ofpp.OFPActionOutput(1),), weight=30),
                                    Bucket((ofpp.OFPActionOutput(2),), weight=70)))
        flow = Flow("Output", 150, {"reg1": 9}, actions=(ofpp.OFPActionGroup(7),))
        bridge.install([flow, group], POD)
        bridge.install([flow, group], POD)  # add-or-modify: no GROUP_EXISTS
        groups = sandbox.ovs.ofctl("-O", "OpenFlow15", "dump-groups", "br-int").stdout
        assert "group_id=7,type=select" in groups
        assert "weight:30" in groups and "weight:70" in groups
        bridge.delete([flow, group], POD)
        groups = sandbox.ovs.ofctl("-O", "OpenFlow15", "dump-groups", "br-int").stdout
        assert "group_id=7" not in groups
    finally:
        conn.close()


def test_vswitchd_restart_calls_on_reconnect_and_replay_restores_flows(sandbox):
    replayed = threading.Event()
    holder: dict[str, OFBridge] = {}

    def replay(conn):
        holder["bridge"].install_pipeline()
        holder["bridge"].install(sample_flows(), POD)
        replayed.set()

    conn = sandbox.connect(on_reconnect=replay, retry_interval=0.1)
    try:
        bridge = holder["bridge"] = OFBridge(LAYOUT, conn)
        bridge.install_pipeline()
        bridge.install(sample_flows(), POD)
        expected = len(sandbox.dump_flows())
        pid = sandbox.ovs.running_pid("ovs-vswitchd")
        assert pid is not None
        processes.stop(pid, "ovs-vswitchd", 10)
        wait_for(lambda: not conn.connected, 5, "the connection to notice")
        sandbox.ovs.start()
        started = time.monotonic()
        assert replayed.wait(15), "on_reconnect was not called"
        log.info("reconnect+replay after vswitchd start took %.3fs",
                 time.monotonic() - started)
        assert conn.generation == 2
        assert len(sandbox.dump_flows()) == expected
        assert len(bridge.dump_flows(POD)) == len(sample_flows())
    finally:
        conn.close()


def test_packet_in_carries_cookie_userdata_and_registers(sandbox):
    received: list[PacketIn] = []
    got = threading.Event()

    def on_packet_in(packet_in: PacketIn) -> None:
        received.append(packet_in)
        got.set()

    conn = sandbox.connect(on_packet_in=on_packet_in)
    try:
        bridge = OFBridge(LAYOUT, conn)
        bridge.install_pipeline()
        to_controller = ofpp.NXActionController2(
            max_len=ofp.OFPCML_NO_BUFFER, reason=ofp.OFPR_APPLY_ACTION,
            userdata=b"\x01\x02\x03\x04")
        bridge.install([Flow("Output", 120, {"reg1": 0xAB},
                             actions=(to_controller,))], POLICY, sequence=0x1234)
        pkt = packet.Packet()
        pkt.add_protocol(ethernet.ethernet(src="aa:bb:cc:00:00:01", dst="aa:bb:cc:00:00:02"))
        pkt.add_protocol(ipv4.ipv4(src="10.244.0.2", dst="10.244.0.3", proto=17))
        pkt.add_protocol(udp.udp(src_port=1000, dst_port=2000))
        pkt.serialize()
        # Packet-out into the Output table with reg1 preset (packet-out resubmit path).
        out = ofpp.OFPPacketOut(
            CODEC, buffer_id=ofp.OFP_NO_BUFFER,
            match=ofpp.OFPMatch(in_port=ofp.OFPP_CONTROLLER),
            actions=[ofpp.OFPActionSetField(reg1=0xAB),
                     ofpp.NXActionResubmitTable(in_port=NX_IN_PORT,
                                                table_id=LAYOUT.table_id("Output"))],
            data=bytes(pkt.data))
        conn.transaction([out])
        assert got.wait(5), "no packet-in"
    finally:
        conn.close()
    packet_in = received[0]
    assert packet_in.cookie == make_cookie(CORE_FEATURE_IDS[POLICY], 1, 0x1234)
    assert packet_in.table_id == LAYOUT.table_id("Output")
    assert packet_in.userdata == b"\x01\x02\x03\x04"
    assert packet_in.fields.get("reg1") == 0xAB
    assert packet_in.data == bytes(pkt.data)


def test_bridge_without_openflow15_is_refused_with_a_clear_error(sandbox):
    sandbox.ovs.vsctl("set", "bridge", "br-int", "protocols=OpenFlow10,OpenFlow13")
    from antrea_core.agent.openflow.connection import OFConnection

    conn = OFConnection(sandbox.mgmt_path, retry_interval=0.1)
    with pytest.raises(VersionMismatch, match="OpenFlow15"):
        conn.start(timeout=2)


def add_veth_port(sandbox, name: str, ofport: int) -> None:
    subprocess.run(["ip", "-n", sandbox.netns, "link", "add", name, "type", "veth",
                    "peer", "name", f"{name}-peer"], check=True, capture_output=True)
    for dev in (name, f"{name}-peer"):
        subprocess.run(["ip", "-n", sandbox.netns, "link", "set", dev, "up"], check=True,
                       capture_output=True)
    sandbox.ovs.vsctl("add-port", "br-int", name, "--", "set", "interface", name,
                      f"ofport_request={ofport}")


def trace_verdict(sandbox, flow: str) -> str:
    out = sandbox.ovs.appctl("ofproto/trace", "br-int", flow).stdout
    lines = [line for line in out.splitlines() if line.startswith("Datapath actions:")]
    return lines[-1].split(":", 1)[1].strip()


def test_ofproto_trace_through_the_pipeline_forwards_known_mac_and_drops_unknown(sandbox):
    add_veth_port(sandbox, "p1", 1)
    add_veth_port(sandbox, "p2", 2)
    conn = sandbox.connect()
    try:
        bridge = OFBridge(LAYOUT, conn)
        bridge.install_pipeline()
        bridge.install([
            Flow("PipelineRootClassifier", 200, {"eth_type": 0x0800}, goto="Classifier"),
            Flow("Classifier", 200, {"in_port": 1}, goto="L2ForwardingCalc"),
            Flow("L2ForwardingCalc", 200, {"eth_dst": "aa:bb:cc:00:00:02"},
                 actions=(ofpp.OFPActionSetField(reg1=2),), goto="Output"),
            Flow("Output", 200, {"reg1": 2}, actions=(ofpp.OFPActionOutput(2),)),
        ], POD)
    finally:
        conn.close()
    dpif = sandbox.ovs.appctl("dpif/show").stdout
    odp_p2 = next(line.split()[1].split("/")[1].rstrip(":")
                  for line in dpif.splitlines() if line.strip().startswith("p2 "))
    base = "in_port=1,ip,nw_src=10.244.0.2,nw_dst=10.244.0.3,dl_src=aa:bb:cc:00:00:01"
    assert trace_verdict(sandbox, f"{base},dl_dst=aa:bb:cc:00:00:02") == odp_p2
    assert trace_verdict(sandbox, f"{base},dl_dst=aa:bb:cc:00:00:09") == "drop"
    assert trace_verdict(sandbox, "in_port=2,ip,dl_dst=aa:bb:cc:00:00:02") == "drop"


def test_ten_thousand_flows_install_through_one_bundle(sandbox):
    conn = sandbox.connect()
    try:
        flows = [Flow("IngressRule", 100, {"eth_type": 0x0800,
                                           "ipv4_src": f"10.{i >> 16 & 255}.{i >> 8 & 255}"
                                                       f".{i & 255}", "reg1": i},
                      goto=GOTO_NEXT) for i in range(10_000)]
        started = time.perf_counter()
        msgs, _ = OFBridge(LAYOUT, conn).compile(flows, POLICY)
        compiled = time.perf_counter()
        bridge = OFBridge(LAYOUT, conn)  # a cold encoder cache, like a first install
        bridge.install(flows, POLICY)
        done = time.perf_counter()
        count = len(bridge.dump_flows(POLICY))
    finally:
        conn.close()
    assert len(msgs) == 10_000
    assert count == 10_000
    log.warning("10k flows: compile only %.0f flows/s; compile + bundle install %.0f flows/s",
                10_000 / (compiled - started), 10_000 / (done - compiled))
