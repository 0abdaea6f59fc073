"""Keeping vswitchd's tunnel neighbour cache resolved (datapath.TunnelPeerResolver) and
reading back flows with copy_field actions (the dump a restarted agent starts with)."""

from __future__ import annotations

import threading

import pytest
from os_ken.lib.packet import arp, ethernet, packet
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp

from antrea_core.agent.datapath import TunnelPeerResolver, tunnel_probe
from antrea_core.agent.openflow import oskenfix  # noqa: F401  (applies the codec fixes)
from antrea_core.agent.openflow.podnetwork import NodeNetworkConfig, RemoteNode

pytestmark = pytest.mark.unit

CFG = NodeNetworkConfig(gateway_ofport=2, gateway_mac="02:00:00:00:00:01",
                        gateway_ips=("10.244.1.1",), pod_cidrs=("10.244.1.0/24",),
                        transport_ips=("192.168.77.11",), tunnel_ofport=1)


def test_tunnel_probe_is_encapsulated_towards_the_peer_and_carries_an_arp_request():
    peer = RemoteNode("node2", ("10.244.0.0/24",), "192.168.77.12")
    msg = tunnel_probe(CFG, peer)
    assert msg is not None
    assert msg.match["in_port"] == ofp.OFPP_CONTROLLER
    set_field, output = msg.actions
    assert set_field.key == "tun_ipv4_dst" and set_field.value == "192.168.77.12"
    assert output.port == 1
    frame = packet.Packet(msg.data)
    eth, request = frame.get_protocol(ethernet.ethernet), frame.get_protocol(arp.arp)
    assert eth.ethertype == 0x0806
    # Not gratuitous: the peer must not take it for an announcement of anything.
    assert request.opcode == arp.ARP_REQUEST
    assert (request.src_ip, request.dst_ip) == ("10.244.1.1", "10.244.0.1")


def test_tunnel_probe_uses_the_ipv6_tunnel_destination_for_an_ipv6_peer():
    peer = RemoteNode("node2", ("10.244.0.0/24",), "fd00::12")
    msg = tunnel_probe(CFG, peer)
    assert msg is not None and msg.actions[0].key == "tun_ipv6_dst"


def test_no_tunnel_probe_without_a_tunnel_port():
    no_tunnel = NodeNetworkConfig(gateway_ofport=2, gateway_mac="02:00:00:00:00:01",
                                  gateway_ips=("10.244.1.1",), pod_cidrs=("10.244.1.0/24",),
                                  transport_ips=("192.168.77.11",), tunnel_ofport=None)
    assert tunnel_probe(no_tunnel, RemoteNode("n", ("10.0.0.0/24",), "1.2.3.4")) is None


def test_resolver_sends_a_burst_after_a_kick_then_only_periodically():
    sent: list[float] = []
    burst_done = threading.Event()

    def send() -> None:
        sent.append(1)
        if len(sent) == len(TunnelPeerResolver.BURST):
            burst_done.set()

    resolver = TunnelPeerResolver(send, interval=3600)
    resolver.BURST = (0.0, 0.01, 0.02)  # type: ignore[misc]
    resolver.start()
    try:
        assert not sent  # nothing until kicked (or the interval passes)
        resolver.kick()
        assert burst_done.wait(5)
    finally:
        resolver.stop()
    assert len(sent) == 3


def test_resolver_survives_a_failing_send():
    calls: list[int] = []
    again = threading.Event()

    def send() -> None:
        calls.append(1)
        if len(calls) >= 2:
            again.set()
        raise ConnectionError("vswitchd away")

    resolver = TunnelPeerResolver(send, interval=0.01)
    resolver.start()
    try:
        assert again.wait(5)
    finally:
        resolver.stop()


def test_a_dumped_copy_field_action_parses_back_with_the_actions_after_it():
    move = ofpp.OFPActionCopyField(n_bits=48, src_offset=0, dst_offset=0,
                                   oxm_ids=[ofpp.OFPOxmId(type_="eth_src"),
                                            ofpp.OFPOxmId(type_="eth_dst")])
    buf = bytearray()
    move.serialize(buf, 0)
    ofpp.OFPActionOutput(7).serialize(buf, len(buf))
    parsed = ofpp.OFPAction.parser(buf, 0)
    assert [i.type for i in parsed.oxm_ids] == ["eth_src", "eth_dst"]
    assert parsed.n_bits == 48 and parsed.len == len(buf) - 16
    assert ofpp.OFPAction.parser(buf, parsed.len).port == 7
