"""The ICMP echo probe's checksum (the probe itself needs a raw socket: lab tests)."""

from __future__ import annotations

import struct

import pytest

from antrea_lab.workload import _inet_checksum

pytestmark = pytest.mark.unit


def test_checksum_of_an_echo_request_matches_the_known_value():
    # Echo request id=1 seq=1 payload "abcd": 16-bit words 0800 0000 0001 0001 6162 6364
    # sum to 0xccc8; the checksum is its one's complement.
    header = struct.pack("!BBHHH", 8, 0, 0, 1, 1)
    assert _inet_checksum(header + b"abcd") == 0x3337


def test_a_message_carrying_its_checksum_sums_to_zero_even_with_an_odd_length():
    payload = b"odd-length!"
    header = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 7)
    csum = _inet_checksum(header + payload)
    packet = struct.pack("!BBHHH", 8, 0, csum, 0x1234, 7) + payload
    assert _inet_checksum(packet) == 0
