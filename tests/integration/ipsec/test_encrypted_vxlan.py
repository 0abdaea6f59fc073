"""Node-to-node kernel VXLAN encrypted by per-node charons (kernel-libipsec), with real
packets: the underlay must carry only IKE and ESP-in-UDP, never plaintext VXLAN, whether
the SA is up, unloaded, or its charon is gone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from waiting import wait_for

from antrea_ipsec.charon import Charon, CharonConfig, CharonError
from antrea_ipsec.sa import conn_name

if TYPE_CHECKING:
    from conftest import Pair

pytestmark = pytest.mark.integration


def test_child_sa_up_and_inner_traffic_is_only_esp_on_underlay(pair: Pair) -> None:
    pair.serve(pair.b)
    for n in (pair.a, pair.b):
        pair.configure(n)
    pair.wait_installed()

    (sa,) = [ike for ike in pair.a.sa.list_sas() if ike.name == conn_name(pair.b.name)]
    assert sa.established and sa.remote_host == pair.b.ip
    (child,) = sa.children
    assert child.mode == "TUNNEL"
    assert child.local_ts == (f"{pair.a.ip}/32[udp]",)
    assert child.remote_ts == (f"{pair.b.ip}/32[udp]",)

    with pair.capture(pair.a) as cap:
        assert wait_for(lambda: pair.probe(pair.a, pair.b), 10, "ICMP over encrypted VXLAN")
        assert pair.probe(pair.a, pair.b, "tcp"), "TCP echo over encrypted VXLAN"
    (seen,) = cap
    assert seen.vxlan == 0, f"plaintext VXLAN on the underlay: {seen}"
    assert seen.esp_in_udp >= 4, seen
    (child,) = [c for ike in pair.a.sa.list_sas() for c in ike.children if c.installed]
    assert child.bytes_out > 0 and child.bytes_in > 0


def test_without_fail_closed_rules_a_missing_sa_leaks_plaintext(pair: Pair) -> None:
    """The fail-open trap the drop rules exist for: no SA, no rule -> plaintext VXLAN."""
    pair.configure(pair.a, fail_closed=False)  # b has no charon config: no SA ever
    with pair.capture(pair.a) as cap:
        pair.probe(pair.a, pair.b, timeout=1)
    assert cap[0].vxlan > 0, cap[0]


def test_unloaded_peer_fails_closed(pair: Pair) -> None:
    for n in (pair.a, pair.b):
        pair.configure(n)
    pair.wait_installed()
    assert wait_for(lambda: pair.probe(pair.a, pair.b), 10, "traffic before unload")

    pair.b.sa.unload_peer(pair.a.name)
    assert conn_name(pair.a.name) not in pair.b.sa.connections()
    wait_for(lambda: not pair.a.sa.child_installed(pair.b.name), 10,
             "a's CHILD SA gone after b unloaded it")
    dropped = pair.a.fail_closed.dropped_packets()
    with pair.capture(pair.a) as cap:
        assert not pair.probe(pair.a, pair.b, timeout=1)
        assert not pair.probe(pair.b, pair.a, timeout=1)
    assert cap[0].vxlan == 0, f"plaintext VXLAN leaked: {cap[0]}"
    assert pair.a.fail_closed.dropped_packets() > dropped

    # Loading the peer again brings the SA and the traffic back.
    pair.b.sa.load_peer(pair.peer_of(pair.b))
    pair.wait_installed()
    assert wait_for(lambda: pair.probe(pair.a, pair.b), 10, "traffic after reload")


def test_stopped_charon_fails_closed_and_restart_restores_traffic(pair: Pair) -> None:
    pair.serve(pair.b)
    for n in (pair.a, pair.b):
        pair.configure(n)
    pair.wait_installed()
    assert wait_for(lambda: pair.probe(pair.a, pair.b, "tcp"), 10, "TCP before stop")

    pair.b.charon.stop()
    wait_for(lambda: not pair.a.sa.child_installed(pair.b.name), 10,
             "a's CHILD SA gone once b's charon stopped")
    with pair.capture(pair.a) as cap:
        assert not pair.probe(pair.a, pair.b, timeout=1)
        assert not pair.probe(pair.a, pair.b, "tcp", timeout=1)
    assert cap[0].vxlan == 0, f"plaintext VXLAN leaked: {cap[0]}"

    started = time.monotonic()
    pair.b.charon.start()
    pair.configure(pair.b)
    pair.wait_installed()
    with pair.capture(pair.a) as cap:
        assert wait_for(lambda: pair.probe(pair.a, pair.b, "tcp"), 15, "TCP after restart")
    assert cap[0].vxlan == 0 and cap[0].esp_in_udp > 0, cap[0]
    assert time.monotonic() - started < 20


def test_charon_restarts_over_stale_pidfile_and_socket(pair: Pair) -> None:
    """A SIGKILLed charon leaves its pidfile and VICI socket behind; a new one starts."""
    for n in (pair.a, pair.b):
        pair.configure(n)
    pair.wait_installed()
    old_pid = pair.a.charon.pid
    pair.a.charon.kill()
    cfg = pair.a.charon.cfg
    assert cfg.pid_path.read_text().strip() == str(old_pid)
    assert cfg.vici_socket.exists()

    new_pid = pair.a.charon.start()
    assert new_pid != old_pid
    pair.configure(pair.a)
    pair.wait_installed()
    assert wait_for(lambda: pair.probe(pair.a, pair.b), 10, "traffic after crash restart")


def test_charon_start_failure_names_the_cause(tmp_path: Path) -> None:
    """charon that exits before VICI answers: the error carries the tail of its log."""
    charon = Charon(CharonConfig(netns="antrea-hn-no-such-netns", state_dir=tmp_path))
    with pytest.raises(CharonError, match=r"(?s)exited with \d+.*antrea-hn-no-such-netns"):
        charon.start(timeout=10)
    assert not charon.running()
