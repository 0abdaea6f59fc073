"""The lab pods' default workload: an echo server and the probes tests run against it.

    python -m antrea_lab.workload serve --tcp 80,81 --udp 80,81 [--sctp 80]
    python -m antrea_lab.workload probe --proto tcp --timeout 1 IP:PORT [[IPv6]:PORT ...]
    python -m antrea_lab.workload connect --proto tcp --count 100 IP:PORT

Protocol (TCP, SCTP, UDP): whatever the server receives it echoes back, except a line
that is exactly "hostname" (TCP/SCTP: a line ending in "\\n" or "\\r\\n"; UDP: a datagram
"hostname" or "hostname\\n"), which is answered with the pod name ($POD_NAME, else
$HOSTNAME, else the host name) and a newline. Service tests use it to tell backends apart.
`serve --name @peer` answers it with the client's address as the server sees it instead
(Egress tests read which source IP a connection arrived with).

Where the kernel has no SCTP (as on the lab's machine), SCTP is served and probed over
raw sockets (`antrea_lab.sctpinit`): the server answers the association set-up (INIT ->
INIT-ACK naming the pod), and a probe counts an INIT-ACK as success; its "hostname" is
the name the INIT-ACK carries. Such a server cannot pick a free port (port 0).

Sockets are dual-stack ("::" with IPV6_V6ONLY off) and fall back to IPv4 when the
namespace has no IPv6. Port 0 picks a free port; `serve` prints one JSON line
{"listening": [{"proto": ..., "port": ...}], "errors": [...]} once it is ready.
`probe` prints one JSON line per target {"target", "ok", "error", "rtt_ms"} and exits 0
whatever the outcome (bad arguments exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import json
import logging
import os
import random
import signal
import socket
import struct
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("antrea.lab.workload")

HOSTNAME_LINES = (b"hostname\n", b"hostname\r\n")
PEER_NAME = "@peer"  # `serve --name @peer`: answer "hostname" with the client's address
SCTP = getattr(socket, "IPPROTO_SCTP", 132)


@functools.cache  # asked for every SCTP probe; the kernel does not change meanwhile
def kernel_has_sctp() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, SCTP).close()
    except OSError as exc:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
            return False
        raise
    return True


def pod_name() -> str:
    return os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or socket.gethostname()


# -- server -------------------------------------------------------------------------------

class LineEchoer:
    """Stream echo with the "hostname" line exception, without delaying other bytes:
    only a possible "hostname" prefix at the start of a line is held back."""

    def __init__(self, name: str) -> None:
        self.reply = name.encode() + b"\n"
        self._pending = b""
        self._line_start = True

    def feed(self, chunk: bytes) -> bytes:
        data, self._pending = self._pending + chunk, b""
        out = bytearray()
        i = 0
        while i < len(data):
            rest = data[i:]
            if self._line_start:
                hit = next((h for h in HOSTNAME_LINES if rest.startswith(h)), None)
                if hit is not None:
                    out += self.reply
                    i += len(hit)
                    continue
                if any(h.startswith(rest) for h in HOSTNAME_LINES):
                    self._pending = rest  # might still become "hostname\n"
                    break
            nl = data.find(b"\n", i)
            end = len(data) if nl < 0 else nl + 1
            out += data[i:end]
            self._line_start = nl >= 0
            i = end
        return bytes(out)

    def flush(self) -> bytes:
        data, self._pending = self._pending, b""
        return data


def datagram_reply(data: bytes, name: str) -> bytes:
    if data in (b"hostname", *HOSTNAME_LINES):
        return name.encode() + b"\n"
    return data


def bind_socket(kind: int, proto: int, port: int) -> socket.socket:
    """A dual-stack socket on port, or IPv4-only where IPv6 is unavailable."""
    try:
        sock = socket.socket(socket.AF_INET6, kind, proto)
    except OSError as exc:
        if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
            raise
        sock = socket.socket(socket.AF_INET, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        return sock
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRNOTAVAIL:  # "::" unusable when IPv6 is disabled
            raise
        sock = socket.socket(socket.AF_INET, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        return sock


async def _stream_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       name: str) -> None:
    echoer = LineEchoer(name)
    try:
        while chunk := await reader.read(65536):
            out = echoer.feed(chunk)
            if out:
                writer.write(out)
                await writer.drain()
        tail = echoer.flush()
        if tail:
            writer.write(tail)
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # peers resetting is normal for probes
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


class _EchoDatagram(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.transport is not None:
            name = _peer_ip(addr) if self.name == PEER_NAME else self.name
            self.transport.sendto(datagram_reply(data, name), addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error %s", exc)


def _peer_ip(addr: Any) -> str:
    """The client's IP; IPv4 clients of a dual-stack socket without their ::ffff: prefix."""
    ip = str(addr[0]) if addr else ""
    return ip.removeprefix("::ffff:")


async def serve(tcp: list[int], udp: list[int], sctp: list[int], name: str,
                ready: asyncio.Future[dict[str, Any]] | None = None,
                stop: asyncio.Event | None = None) -> dict[str, Any]:
    """Serve until stop is set; returns the listening summary (also set on ready)."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.AbstractServer] = []
    transports: list[asyncio.BaseTransport] = []
    listening: list[dict[str, Any]] = []
    errors: list[str] = []

    def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> Any:
        return _stream_echo(r, w, _peer_ip(w.get_extra_info("peername"))
                            if name == PEER_NAME else name)

    raw_sctp: list[int] = []
    if sctp and not kernel_has_sctp():
        raw_sctp, sctp = sctp, []
    for proto_name, ports, ipproto in (("tcp", tcp, socket.IPPROTO_TCP), ("sctp", sctp, SCTP)):
        for port in ports:
            try:
                sock = bind_socket(socket.SOCK_STREAM, ipproto, port)
            except OSError as exc:
                msg = f"{proto_name}/{port}: {exc.strerror or exc}"
                if exc.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
                    msg = f"{proto_name}/{port}: {proto_name} not supported by this kernel"
                errors.append(msg)
                continue
            server = await asyncio.start_server(on_conn, sock=sock, backlog=1024)
            servers.append(server)
            listening.append({"proto": proto_name, "port": sock.getsockname()[1]})
    for port in udp:
        try:
            sock = bind_socket(socket.SOCK_DGRAM, 0, port)
        except OSError as exc:
            errors.append(f"udp/{port}: {exc.strerror or exc}")
            continue
        transport, _ = await loop.create_datagram_endpoint(lambda: _EchoDatagram(name), sock=sock)
        transports.append(transport)
        listening.append({"proto": "udp", "port": sock.getsockname()[1]})
    tasks: list[asyncio.Task[None]] = []
    if raw_sctp:
        if 0 in raw_sctp:
            errors.append("sctp/0: no free-port choice without the kernel's SCTP")
        ports = [p for p in raw_sctp if p]
        if ports:
            from antrea_lab import sctpinit  # os-ken's packet library: ~0.3 s to import
            tasks.append(asyncio.create_task(sctpinit.Responder(ports, name).run()))
            listening += [{"proto": "sctp", "port": p, "raw": True} for p in ports]
    summary = {"listening": listening, "errors": errors}
    if ready is not None and not ready.done():
        ready.set_result(summary)
    stop = stop or asyncio.Event()
    try:
        if listening:
            await stop.wait()
    finally:
        for server in servers:
            server.close()
        for transport in transports:
            transport.close()
        for task in tasks:
            task.cancel()
    return summary


# -- probes -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    host: str
    port: int
    text: str

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET


def parse_target(text: str) -> Target:
    """IP:PORT or [IPv6]:PORT."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"bad target {text!r}: want [IPv6]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"bad target {text!r}: want IP:PORT or [IPv6]:PORT")
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        number = int(port)
    except (OSError, ValueError):
        raise ValueError(f"bad target {text!r}: want IP:PORT or [IPv6]:PORT") from None
    if not 0 < number < 65536:
        raise ValueError(f"bad target {text!r}: port out of range")
    return Target(host, number, text)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
            return "protocol not supported by this kernel"
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _result(target: Target, ok: bool, error: str | None, rtt: float | None,
            **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"target": target.text, "ok": ok, "error": error,
                           "rtt_ms": round(rtt * 1000, 3) if rtt is not None else None}
    out.update(extra)
    return out


async def _stream_round_trip(target: Target, ipproto: int, payload: bytes,
                             expect: bytes | None) -> tuple[float, bytes]:
    """Connect, send payload, read one reply line; returns (rtt seconds, reply)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(target.family, socket.SOCK_STREAM, ipproto)
    sock.setblocking(False)
    start = time.monotonic()
    try:
        await loop.sock_connect(sock, (target.host, target.port))
    except BaseException:
        sock.close()
        raise
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(payload)
        await writer.drain()
        reply = await reader.readline()
        rtt = time.monotonic() - start
        if expect is not None and reply != expect:
            raise ConnectionError(f"unexpected reply {reply[:64]!r}")
        if not reply:
            raise ConnectionResetError("connection closed without a reply")
        return rtt, reply
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


class _Reply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.replies.put_nowait(exc)  # ICMP port unreachable arrives here


async def _udp_round_trip(target: Target, timeout: float, payload: bytes,
                          expect: bytes | None, attempts: int = 3) -> tuple[float, bytes]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Reply, remote_addr=(target.host, target.port), family=target.family)
    start = time.monotonic()
    deadline = start + timeout
    last_error: Exception = TimeoutError()
    try:
        for attempt in range(attempts):
            sent = time.monotonic()
            transport.sendto(payload)
            # Spread the attempts over the timeout: UDP may drop a datagram.
            slot_end = min(deadline, start + timeout * (attempt + 1) / attempts)
            while (left := slot_end - time.monotonic()) > 0:
                try:
                    item = await asyncio.wait_for(proto.replies.get(), left)
                except TimeoutError:
                    break
                if isinstance(item, Exception):
                    last_error = item
                    if isinstance(item, ConnectionRefusedError):
                        raise item
                    continue
                if expect is None or item == expect:
                    return time.monotonic() - sent, item
        raise last_error
    finally:
        transport.close()


ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129


def _inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


async def _icmp_round_trip(target: Target, timeout: float, attempts: int = 3) -> float:
    """ICMP echo through a raw socket (root; the lab's pod netns have no ping binary and
    no ping_group_range for unprivileged ICMP sockets). The port of `target` is unused."""
    loop = asyncio.get_running_loop()
    v6 = target.family == socket.AF_INET6
    sock = socket.socket(target.family, socket.SOCK_RAW,
                         socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    sock.setblocking(False)
    ident = random.randrange(1 << 16)
    request, reply = ((ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY) if v6
                      else (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY))
    start = time.monotonic()
    try:
        for seq in range(attempts):
            payload = uuid.uuid4().bytes
            header = struct.pack("!BBHHH", request, 0, 0, ident, seq)
            # The kernel fills the ICMPv6 checksum (it needs the pseudo-header).
            csum = 0 if v6 else _inet_checksum(header + payload)
            packet = struct.pack("!BBHHH", request, 0, csum, ident, seq) + payload
            sent = time.monotonic()
            await loop.sock_sendto(sock, packet, (target.host, 0))
            slot_end = start + timeout * (seq + 1) / attempts
            while (left := slot_end - time.monotonic()) > 0:
                try:
                    data, peer = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), left)
                except TimeoutError:
                    break
                icmp = data if v6 else data[(data[0] & 0x0F) * 4:]  # v4 raw: IP header too
                if (peer[0] == target.host and len(icmp) >= 8 + len(payload)
                        and icmp[0] == reply
                        and struct.unpack("!HH", icmp[4:8]) == (ident, seq)
                        and icmp[8:8 + len(payload)] == payload):
                    return time.monotonic() - sent
        raise TimeoutError()
    finally:
        sock.close()


async def probe_one(target: Target, proto: str, timeout: float,
                    hostname: bool = False) -> dict[str, Any]:
    if hostname:
        payload, expect = b"hostname\n", None
    else:
        payload = f"antrea-probe {uuid.uuid4().hex}\n".encode()
        expect = payload
    try:
        async with asyncio.timeout(timeout):
            if proto == "icmp":
                rtt, reply = await _icmp_round_trip(target, timeout), b"icmp"
            elif proto == "udp":
                rtt, reply = await _udp_round_trip(target, timeout, payload, expect)
            elif proto == "sctp" and not kernel_has_sctp():
                from antrea_lab import sctpinit
                started = time.monotonic()
                name = await sctpinit.probe(target.host, target.port, timeout)
                rtt, reply = time.monotonic() - started, name.encode()
            else:
                ipproto = SCTP if proto == "sctp" else socket.IPPROTO_TCP
                rtt, reply = await _stream_round_trip(target, ipproto, payload, expect)
    except Exception as exc:
        extra = {"hostname": None} if hostname else {}
        return _result(target, False, describe_error(exc), None, **extra)
    extra = {"hostname": reply.decode(errors="replace").strip()} if hostname else {}
    return _result(target, True, None, rtt, **extra)


async def probe_all(targets: list[Target], proto: str, timeout: float,
                    hostname: bool = False) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(probe_one(t, proto, timeout, hostname)
                                       for t in targets)))


async def connect_many(target: Target, proto: str, count: int, timeout: float,
                       concurrency: int = 1) -> dict[str, Any]:
    """count short connections (connect + one echo + close); reports the rate."""
    ipproto = SCTP if proto == "sctp" else socket.IPPROTO_TCP
    ok = 0
    errors: dict[str, int] = {}
    lock = asyncio.Lock()
    todo = iter(range(count))

    async def worker() -> None:
        nonlocal ok
        for _ in todo:
            try:
                async with asyncio.timeout(timeout):
                    await _stream_round_trip(target, ipproto, b"x\n", b"x\n")
                async with lock:
                    ok += 1
            except Exception as exc:
                msg = describe_error(exc)
                errors[msg] = errors.get(msg, 0) + 1

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    elapsed = time.monotonic() - start
    return {"target": target.text, "count": count, "ok": ok, "failed": count - ok,
            "errors": errors, "seconds": round(elapsed, 3),
            "rate_per_s": round(ok / elapsed, 1) if elapsed > 0 else None}


# -- CLI ----------------------------------------------------------------------------------

def _ports(text: str) -> list[int]:
    try:
        ports = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port list {text!r}") from None
    if any(not 0 <= p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"port out of range in {text!r}")
    return ports


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m antrea_lab.workload",
                                description="Lab pod workload: echo server and probes.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="echo server on TCP/UDP/SCTP ports (0 = any free port)")
    s.add_argument("--tcp", type=_ports, default=[])
    s.add_argument("--udp", type=_ports, default=[])
    s.add_argument("--sctp", type=_ports, default=[])
    s.add_argument("--name", default=None, help="answer to 'hostname' (default: $POD_NAME; "
                   "@peer: the client's IP as seen here)")
    for name, helptext in (("probe", "one echo round trip per target, JSON line each"),
                           ("connect", "N short connections to one target, prints the rate")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("--proto", choices=("tcp", "udp", "sctp", "icmp"), default="tcp",
                       help="icmp: echo request (raw socket, root); the port is ignored")
        q.add_argument("--timeout", type=float, default=1.0)
        if name == "probe":
            q.add_argument("--hostname", action="store_true",
                           help="ask for the backend's name; adds a 'hostname' field")
            q.add_argument("targets", nargs="+", metavar="TARGET")
        else:
            q.add_argument("--count", type=int, default=100)
            q.add_argument("--concurrency", type=int, default=1)
            q.add_argument("targets", nargs=1, metavar="TARGET")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "serve":
        return _main_serve(args, parser)
    try:
        targets = [parse_target(t) for t in args.targets]
    except ValueError as exc:
        parser.error(str(exc))
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.command == "probe":
        for result in asyncio.run(probe_all(targets, args.proto, args.timeout, args.hostname)):
            print(json.dumps(result), flush=True)
        return 0
    if args.proto in ("udp", "icmp"):
        parser.error("connect supports tcp and sctp")
    if args.proto == "sctp" and not kernel_has_sctp():
        parser.error("connect --proto sctp needs the kernel's SCTP (probe works without)")
    result = asyncio.run(connect_many(targets[0], args.proto, args.count, args.timeout,
                                      args.concurrency))
    print(json.dumps(result), flush=True)
    return 0


def _main_serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not (args.tcp or args.udp or args.sctp):
        parser.error("serve needs at least one of --tcp, --udp, --sctp")
    name = args.name or pod_name()

    async def run() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        task = asyncio.create_task(serve(args.tcp, args.udp, args.sctp, name, ready, stop))
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            return await task  # serve failed before listening: raise its error
        summary = ready.result()
        print(json.dumps(summary), flush=True)
        for err in summary["errors"]:
            log.error("not serving %s", err)
        return await task

    summary = asyncio.run(run())
    return 0 if summary["listening"] else 1


if __name__ == "__main__":
    sys.exit(main())
