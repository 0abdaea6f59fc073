"""SCTP association set-up over raw sockets, for kernels built without SCTP.

Lab machines may lack the kernel's SCTP stack, yet SCTP Services and NetworkPolicies
must still be proven with real packets. This module speaks the first exchange of an
SCTP association (RFC 9260 §5.1) the way a kernel endpoint would:

- the responder answers an INIT to one of its ports with an INIT-ACK whose State Cookie
  carries the pod name (a real stack would put its own opaque state there), a
  COOKIE-ECHO with a COOKIE-ACK, and an INIT to any other port with an ABORT;
- the prober sends an INIT from a random port and verification tag, waits for the
  INIT-ACK (or ABORT / ICMP unreachable), then ABORTs the association so that no state
  lingers in conntrack.

Chunks are built and parsed with os-ken's packet library; the CRC32c comes from
google-crc32c, because os-ken's checksums the text of the bytes' repr on Python 3. The
kernel adds the IP header. IPv4 only: raw IPv6 sockets do not hand over the IP header, and the
lab's SCTP tests are IPv4.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Iterable

import google_crc32c
from os_ken.lib.packet import sctp

log = logging.getLogger("antrea.lab.workload.sctp")

IPPROTO_SCTP = 132
ICMP_DEST_UNREACH = 3
ICMP_PORT_UNREACH = 3


def checksum(packet: bytes) -> bytes:
    """The CRC32c field of an SCTP packet, as sent (RFC 9260 appendix B: the CRC's
    least significant byte first)."""
    return struct.pack("<I", google_crc32c.value(packet[:8] + b"\0\0\0\0" + packet[12:]))


def build(src_port: int, dst_port: int, vtag: int, *chunks: object) -> bytes:
    """One SCTP packet (common header + chunks), checksum computed."""
    # A non-zero placeholder keeps os-ken from computing its own (wrong) checksum.
    raw = sctp.sctp(src_port, dst_port, vtag, 1, list(chunks)).serialize(b"", None)
    return raw[:8] + checksum(raw) + raw[12:]


def parse_ipv4(data: bytes) -> tuple[str, sctp.sctp] | None:
    """(source IP, SCTP packet) of an IPv4 datagram from a raw socket; None when it is
    not a well-formed SCTP packet with a valid checksum."""
    if len(data) < 20 or data[0] >> 4 != 4 or data[9] != IPPROTO_SCTP:
        return None
    body = data[(data[0] & 0x0F) * 4:]
    if len(body) < 12:
        return None
    if checksum(body) != body[8:12]:
        return None
    try:
        packet, _, _ = sctp.sctp.parser(body)
    except Exception:  # malformed chunks: not ours to answer
        return None
    return socket.inet_ntoa(data[12:16]), packet


def _raw_socket(proto: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    sock.setblocking(False)
    return sock


class Responder:
    """Answers INITs to `ports` with INIT-ACKs naming `name`; ABORTs the others."""

    def __init__(self, ports: Iterable[int], name: str) -> None:
        self.ports = frozenset(ports)
        self.name = name
        self.sock = _raw_socket(IPPROTO_SCTP)

    def answer(self, data: bytes) -> tuple[str, bytes] | None:
        """(destination IP, reply) for one received datagram, None when none is due."""
        parsed = parse_ipv4(data)
        if parsed is None or not parsed[1].chunks:
            return None
        peer, packet = parsed
        chunk = packet.chunks[0]
        back = (packet.dst_port, packet.src_port)
        if isinstance(chunk, sctp.chunk_init):
            if packet.dst_port not in self.ports:
                return peer, build(*back, chunk.init_tag, sctp.chunk_abort(tflag=0))
            cookie = sctp.param_state_cookie(self.name.encode())
            ack = sctp.chunk_init_ack(init_tag=random.randrange(1, 1 << 32),
                                      a_rwnd=65536, os=1, mis=1,
                                      i_tsn=random.randrange(1 << 32), params=[cookie])
            return peer, build(*back, chunk.init_tag, ack)
        if isinstance(chunk, sctp.chunk_cookie_echo) and packet.dst_port in self.ports:
            return peer, build(*back, packet.vtag, sctp.chunk_cookie_ack())
        return None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self.sock, 65535)
                reply = self.answer(data)
                if reply is not None:
                    with contextlib.suppress(OSError):
                        await loop.sock_sendto(self.sock, reply[1], (reply[0], 0))
        finally:
            self.sock.close()


async def probe(host: str, port: int, timeout: float, sport: int = 0) -> str:
    """The name in the INIT-ACK's State Cookie of host:port, from `sport` (0: a random
    port). Raises ConnectionRefused on ABORT or ICMP port unreachable, TimeoutError
    when nothing answers."""
    loop = asyncio.get_running_loop()
    sport = sport or random.randrange(20000, 60000)
    tag = random.randrange(1, 1 << 32)
    with _raw_socket(IPPROTO_SCTP) as sock, _raw_socket(socket.IPPROTO_ICMP) as icmp:
        init = sctp.chunk_init(init_tag=tag, a_rwnd=65536, os=1, mis=1,
                               i_tsn=random.randrange(1 << 32))
        await loop.sock_sendto(sock, build(sport, port, 0, init), (host, 0))
        answered: asyncio.Future[str] = loop.create_future()

        def on_sctp() -> None:
            with contextlib.suppress(BlockingIOError):
                while not answered.done():
                    parsed = parse_ipv4(sock.recv(65535))
                    if parsed is None:
                        continue
                    peer, packet = parsed
                    if (peer, packet.src_port, packet.dst_port, packet.vtag) != (
                            host, port, sport, tag) or not packet.chunks:
                        continue
                    chunk = packet.chunks[0]
                    if isinstance(chunk, sctp.chunk_abort):
                        answered.set_exception(ConnectionRefusedError("ABORT"))
                    elif isinstance(chunk, sctp.chunk_init_ack):
                        cookie = next((p.value for p in chunk.params
                                       if isinstance(p, sctp.param_state_cookie)), b"")
                        # Tear the association down: nothing lingers in conntrack.
                        with contextlib.suppress(OSError):
                            sock.sendto(build(sport, port, chunk.init_tag,
                                              sctp.chunk_abort(tflag=0)), (host, 0))
                        answered.set_result(cookie.decode(errors="replace"))

        def on_icmp() -> None:
            with contextlib.suppress(BlockingIOError):
                while not answered.done():
                    data = icmp.recv(65535)
                    inner = data[(data[0] & 0x0F) * 4:]
                    if len(inner) < 8 + 20 + 4 or inner[:2] != bytes(
                            (ICMP_DEST_UNREACH, ICMP_PORT_UNREACH)):
                        continue
                    quoted = inner[8:]
                    l4 = quoted[(quoted[0] & 0x0F) * 4:]
                    if quoted[9] == IPPROTO_SCTP and struct.unpack_from("!HH", l4) == (
                            sport, port):
                        answered.set_exception(ConnectionRefusedError("port unreachable"))

        loop.add_reader(sock.fileno(), on_sctp)
        loop.add_reader(icmp.fileno(), on_icmp)
        try:
            async with asyncio.timeout(timeout):
                return await answered
        finally:
            loop.remove_reader(sock.fileno())
            loop.remove_reader(icmp.fileno())
