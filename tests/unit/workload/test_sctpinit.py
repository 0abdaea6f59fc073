"""The raw-socket SCTP association set-up (no sockets: packets in, packets out)."""

from __future__ import annotations

import socket

import pytest
from os_ken.lib.packet import sctp

from antrea_lab import sctpinit

pytestmark = pytest.mark.unit


def _ipv4(src: str, dst: str, payload: bytes) -> bytes:
    header = bytes([0x45, 0, 0, 20 + len(payload), 0, 0, 0, 0, 64, 132, 0, 0])
    return header + socket.inet_aton(src) + socket.inet_aton(dst) + payload


def _init(dst_port: int, tag: int = 0xABCD) -> bytes:
    return sctpinit.build(40000, dst_port, 0, sctp.chunk_init(
        init_tag=tag, a_rwnd=65536, os=1, mis=1, i_tsn=1))


def test_crc32c_is_the_rfc_one_least_significant_byte_first():
    # RFC 3720 B.4: 32 bytes of zeros have CRC32c 0x8a9136aa.
    packet = bytes(32)
    assert sctpinit.checksum(packet) == bytes.fromhex("aa36918a")


def test_an_init_to_a_served_port_gets_an_init_ack_carrying_the_name():
    responder = sctpinit.Responder([3868], "web-1")
    peer, reply = responder.answer(_ipv4("10.0.0.1", "10.0.0.2", _init(3868)))
    assert peer == "10.0.0.1"
    _, parsed = sctpinit.parse_ipv4(_ipv4("10.0.0.2", "10.0.0.1", reply))
    assert (parsed.src_port, parsed.dst_port, parsed.vtag) == (3868, 40000, 0xABCD)
    [ack] = parsed.chunks
    assert isinstance(ack, sctp.chunk_init_ack)
    assert [p.value for p in ack.params] == [b"web-1"]


def test_an_init_to_another_port_is_aborted_and_a_corrupt_packet_ignored():
    responder = sctpinit.Responder([3868], "web-1")
    _, reply = responder.answer(_ipv4("10.0.0.1", "10.0.0.2", _init(9999)))
    _, parsed = sctpinit.parse_ipv4(_ipv4("10.0.0.2", "10.0.0.1", reply))
    assert isinstance(parsed.chunks[0], sctp.chunk_abort)
    corrupt = bytearray(_init(3868))
    corrupt[-1] ^= 0xFF
    assert responder.answer(_ipv4("10.0.0.1", "10.0.0.2", bytes(corrupt))) is None
