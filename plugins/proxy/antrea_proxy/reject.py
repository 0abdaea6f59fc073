"""Answer a packet sent to a Service without endpoints, as kube-proxy does: TCP RST for
TCP, ICMP port unreachable for UDP and SCTP. Pure packet building (os-ken's packet
library); the proxier sends the answer back out of the port the packet came in on."""

from __future__ import annotations

from os_ken.lib.packet import ethernet, icmp, ipv4, packet, tcp
from os_ken.ofproto import ether, inet

ICMP_PORT_UNREACHABLE = 3
ICMP_QUOTE_PAYLOAD = 8  # bytes of the offending datagram quoted after its IP header


def reject_reply(data: bytes) -> bytes | None:
    """The reply to `data` (an Ethernet frame), or None when nothing should be sent
    (not IPv4, a RST itself, an ICMP error: never answer an error with an error)."""
    pkt = packet.Packet(data)
    eth = pkt.get_protocol(ethernet.ethernet)
    ip = pkt.get_protocol(ipv4.ipv4)
    if eth is None or ip is None:
        return None
    reply_eth = ethernet.ethernet(dst=eth.src, src=eth.dst, ethertype=ether.ETH_TYPE_IP)
    if ip.proto == inet.IPPROTO_TCP:
        seg = pkt.get_protocol(tcp.tcp)
        if seg is None or seg.bits & tcp.TCP_RST:
            return None
        return _tcp_reset(reply_eth, ip, seg, len(pkt.protocols[-1])
                          if isinstance(pkt.protocols[-1], bytes | bytearray) else 0)
    if ip.proto in (inet.IPPROTO_UDP, inet.IPPROTO_SCTP):
        return _port_unreachable(reply_eth, ip, data)
    return None


def _tcp_reset(eth: ethernet.ethernet, ip: ipv4.ipv4, seg: tcp.tcp, payload: int) -> bytes:
    # RFC 9293 3.10.7.1: answer an ACK with seq=its ack; anything else with ACK of
    # everything it occupied (SYN and FIN count one each).
    if seg.bits & tcp.TCP_ACK:
        seq, ack, bits = seg.ack, 0, tcp.TCP_RST
    else:
        length = payload + (1 if seg.bits & tcp.TCP_SYN else 0) + (
            1 if seg.bits & tcp.TCP_FIN else 0)
        seq, ack, bits = 0, (seg.seq + length) & 0xFFFFFFFF, tcp.TCP_RST | tcp.TCP_ACK
    out = packet.Packet()
    out.add_protocol(eth)
    out.add_protocol(ipv4.ipv4(src=ip.dst, dst=ip.src, proto=inet.IPPROTO_TCP, ttl=64))
    out.add_protocol(tcp.tcp(src_port=seg.dst_port, dst_port=seg.src_port, seq=seq, ack=ack,
                             bits=bits, window_size=0))
    out.serialize()
    return bytes(out.data)


def _port_unreachable(eth: ethernet.ethernet, ip: ipv4.ipv4, frame: bytes) -> bytes:
    start = 14  # the quoted datagram: its IP header and the first 8 bytes after it
    quoted = frame[start:start + ip.header_length * 4 + ICMP_QUOTE_PAYLOAD]
    out = packet.Packet()
    out.add_protocol(eth)
    out.add_protocol(ipv4.ipv4(src=ip.dst, dst=ip.src, proto=inet.IPPROTO_ICMP, ttl=64))
    out.add_protocol(icmp.icmp(type_=icmp.ICMP_DEST_UNREACH, code=ICMP_PORT_UNREACHABLE,
                               data=icmp.dest_unreach(data=quoted)))
    out.serialize()
    return bytes(out.data)
