"""The pod workload: echo server and probe CLI on loopback (ephemeral ports)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from antrea_lab.workload import LineEchoer, datagram_reply, parse_target

pytestmark = pytest.mark.unit

PY = sys.executable


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, int]]:
    env = {**os.environ, "POD_NAME": "pod-under-test"}
    proc = subprocess.Popen([PY, "-m", "antrea_lab.workload", "serve", "--tcp", "0",
                             "--udp", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    try:
        assert proc.stdout is not None
        summary = json.loads(proc.stdout.readline())
        ports = {entry["proto"]: entry["port"] for entry in summary["listening"]}
        assert set(ports) == {"tcp", "udp"}
        yield ports
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def closed_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(*args: str) -> list[dict]:
    out = subprocess.run([PY, "-m", "antrea_lab.workload", "probe", *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_tcp_probe_ok_on_ipv4_and_ipv6(server: dict[str, int]) -> None:
    port = server["tcp"]
    results = probe("--proto", "tcp", "--timeout", "2", f"127.0.0.1:{port}", f"[::1]:{port}")
    assert [r["target"] for r in results] == [f"127.0.0.1:{port}", f"[::1]:{port}"]
    for r in results:
        assert r["ok"] is True and r["error"] is None and r["rtt_ms"] > 0


def test_udp_probe_ok(server: dict[str, int]) -> None:
    [r] = probe("--proto", "udp", "--timeout", "2", f"127.0.0.1:{server['udp']}")
    assert r["ok"] is True and r["rtt_ms"] > 0


def test_probe_closed_tcp_port_is_refused() -> None:
    port = closed_port(socket.SOCK_STREAM)
    [r] = probe("--proto", "tcp", "--timeout", "1", f"127.0.0.1:{port}")
    assert r == {"target": f"127.0.0.1:{port}", "ok": False, "error": "connection refused",
                 "rtt_ms": None}


def test_probe_closed_udp_port_fails() -> None:
    port = closed_port(socket.SOCK_DGRAM)
    [r] = probe("--proto", "udp", "--timeout", "1", f"127.0.0.1:{port}")
    assert r["ok"] is False
    assert r["error"] in ("connection refused", "timeout")


def test_probe_unanswered_tcp_connect_times_out() -> None:
    # A listening socket that never accepts and has a full backlog leaves SYNs unanswered.
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        fillers = []
        try:
            for _ in range(16):  # fill the accept queue until a connect hangs
                try:
                    fillers.append(socket.create_connection(("127.0.0.1", port), timeout=0.3))
                except TimeoutError:
                    break
            start = time.monotonic()
            [r] = probe("--proto", "tcp", "--timeout", "0.5", f"127.0.0.1:{port}")
            assert r["ok"] is False and r["error"] == "timeout"
            assert time.monotonic() - start < 10
        finally:
            for f in fillers:
                f.close()


def test_probe_hostname_reports_pod_name(server: dict[str, int]) -> None:
    for proto in ("tcp", "udp"):
        [r] = probe("--proto", proto, "--hostname", "--timeout", "2",
                    f"127.0.0.1:{server[proto]}")
        assert r["ok"] is True
        assert r["hostname"] == "pod-under-test"


def test_tcp_echo_protocol_over_a_raw_socket(server: dict[str, int]) -> None:
    with socket.create_connection(("127.0.0.1", server["tcp"]), timeout=2) as s:
        s.sendall(b"abc\nhostname\nhost")
        s.sendall(b"name\r\nhostnamex\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data == b"abc\npod-under-test\npod-under-test\nhostnamex\n"


def test_probe_many_targets_concurrently(server: dict[str, int]) -> None:
    refused = closed_port(socket.SOCK_STREAM)
    targets = [f"127.0.0.1:{server['tcp']}"] * 5 + [f"127.0.0.1:{refused}"]
    start = time.monotonic()
    results = probe("--proto", "tcp", "--timeout", "2", *targets)
    assert [r["ok"] for r in results] == [True] * 5 + [False]
    assert time.monotonic() - start < 10


def test_connect_reports_rate(server: dict[str, int]) -> None:
    out = subprocess.run([PY, "-m", "antrea_lab.workload", "connect", "--count", "50",
                          f"127.0.0.1:{server['tcp']}"], capture_output=True, text=True,
                         timeout=30)
    result = json.loads(out.stdout)
    assert result["ok"] == 50 and result["failed"] == 0
    assert result["rate_per_s"] > 0


@pytest.mark.parametrize("bad", ["10.0.0.1", "::1:80", "[::1]80", "host:80", "10.0.0.1:0",
                                 "10.0.0.1:x"])
def test_bad_targets_exit_2(bad: str) -> None:
    out = subprocess.run([PY, "-m", "antrea_lab.workload", "probe", bad],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    with pytest.raises(ValueError):
        parse_target(bad)


def test_parse_target_forms() -> None:
    assert parse_target("10.1.2.3:80").host == "10.1.2.3"
    t = parse_target("[fd00::1]:8080")
    assert (t.host, t.port, t.family) == ("fd00::1", 8080, socket.AF_INET6)


def test_line_echoer_holds_only_a_possible_hostname_prefix() -> None:
    e = LineEchoer("p1")
    assert e.feed(b"host") == b""          # could still become "hostname\n"
    assert e.feed(b"ile\n") == b"hostile\n"
    assert e.feed(b"x hostname\n") == b"x hostname\n"  # not at a line start
    assert e.feed(b"hostname") == b""
    assert e.flush() == b"hostname"
    assert e.feed(b"\x00\x01binary") == b"\x00\x01binary"


def test_datagram_reply() -> None:
    assert datagram_reply(b"hostname", "p1") == b"p1\n"
    assert datagram_reply(b"hostname\n", "p1") == b"p1\n"
    assert datagram_reply(b"hello", "p1") == b"hello"


def test_sctp_without_a_free_port_choice_is_reported_not_fatal() -> None:
    has_sctp = True
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError:
        has_sctp = False
    proc = subprocess.Popen([PY, "-m", "antrea_lab.workload", "serve", "--tcp", "0",
                             "--sctp", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        summary = json.loads(proc.stdout.readline())
        protos = [e["proto"] for e in summary["listening"]]
        if has_sctp:
            assert protos == ["tcp", "sctp"] and summary["errors"] == []
        else:
            # Raw-socket SCTP (antrea_lab.sctpinit) serves named ports only.
            assert protos == ["tcp"]
            assert summary["errors"] == ["sctp/0: no free-port choice without the kernel's SCTP"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_a_peer_server_answers_hostname_with_the_clients_address() -> None:
    proc = subprocess.Popen([PY, "-m", "antrea_lab.workload", "serve", "--tcp", "0",
                             "--udp", "0", "--name", "@peer"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ports = {e["proto"]: e["port"] for e in json.loads(proc.stdout.readline())["listening"]}
        # 127.0.0.2 is loopback too: the answer is the source, not the destination. (UDP
        # answers from the routed source address, which a connected client refuses.)
        for proto, dst in (("tcp", "127.0.0.2"), ("udp", "127.0.0.1")):
            [r] = probe("--proto", proto, "--hostname", "--timeout", "2",
                        f"{dst}:{ports[proto]}")
            assert r["ok"] is True
            assert r["hostname"] == "127.0.0.1"
            [r] = probe("--proto", proto, "--hostname", "--timeout", "2", f"[::1]:{ports[proto]}")
            assert r["hostname"] == "::1"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
