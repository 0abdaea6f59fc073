"""The datapath flush after policy updates: when it runs and what it runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from np_fakes import NODE, Pod, RecordingBridge, ag, atg, member, policy, rule

from antrea_core.agent.networkpolicy import dpflush
from antrea_core.agent.networkpolicy.controller import NetworkPolicyController
from antrea_core.apis.controlplane import EventType, ObjectKind, WatchEvent

pytestmark = pytest.mark.unit

WEB0 = Pod("default", "web-0", 10, ("10.10.0.10",))


def test_every_applied_policy_update_flushes_the_datapath_once():
    flushes: list[int] = []
    bridge = RecordingBridge()
    ctl = NetworkPolicyController(NODE, bridge, flush_datapath=lambda: flushes.append(1))
    ctl.pod_added(WEB0)
    ctl.replace_all([policy("p", ("web",), rule(groups=("a",)))],
                    [atg("web", member("web-0", "10.10.0.10"))],
                    [ag("a", member("a1", "10.20.0.1"))])
    assert len(flushes) == 1  # the snapshot's replace
    ctl.apply(WatchEvent(EventType.DELETED, ObjectKind.NETWORK_POLICY, "p"))
    assert len(flushes) == 2 and len(bridge.bundles) == 1
    bridge.fail = True  # nothing applied: nothing to flush
    ctl.apply(WatchEvent(EventType.ADDED, ObjectKind.NETWORK_POLICY, "q",
                         obj=policy("q", ("web",))))
    assert len(flushes) == 2


def test_flusher_purges_through_the_vswitchd_control_socket(tmp_path: Path, monkeypatch):
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: calls.append(argv))
    flusher = dpflush.DatapathFlusher(tmp_path)
    flusher()  # no socket: logged, nothing run
    assert calls == []
    (tmp_path / "ovs-vswitchd.pid").write_text("4242\n")
    (tmp_path / "ovs-vswitchd.4242.ctl").touch()
    flusher()
    assert calls == [["ovs-appctl", "-t", str(tmp_path / "ovs-vswitchd.4242.ctl"),
                      "revalidator/purge"]]


def test_flusher_failure_is_logged_not_raised(tmp_path: Path, monkeypatch, caplog):
    (tmp_path / "ovs-vswitchd.ctl").touch()

    def fail(argv, **kw):
        raise subprocess.CalledProcessError(1, argv)

    monkeypatch.setattr(subprocess, "run", fail)
    dpflush.DatapathFlusher(tmp_path)()
    assert "purging datapath flows failed" in caplog.text
