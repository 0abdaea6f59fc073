"""Container processes, pod phase/status, node status, the bridge conflist, pod workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from antrea_lab.node import bridge_cni, node_status
from antrea_lab.node.containers import (
    WORKLOAD_ENTRYPOINT,
    Container,
    container_argv,
    container_env,
    expand,
)
from antrea_lab.node.pod_status import phase, pod_status
from antrea_lab.node.pod_workers import PodWorkers
from antrea_lab.node.sandbox import Sandbox, load_all, pod_netns_name

pytestmark = pytest.mark.unit

POD = {"metadata": {"name": "web", "namespace": "ns1", "uid": "1234abcd-5678-90ef-aaaa-bbbb",
                    "labels": {"app": "web"}},
       "spec": {"containers": [], "restartPolicy": "Always"}}


def test_container_without_command_runs_workload_serve_with_its_ports():
    spec = {"name": "c", "ports": [{"containerPort": 80}, {"containerPort": 81},
                                   {"containerPort": 53, "protocol": "UDP"},
                                   {"containerPort": 9, "protocol": "SCTP"}]}
    assert container_argv(spec, {}) == [*WORKLOAD_ENTRYPOINT, "serve", "--tcp", "80,81",
                                        "--udp", "53", "--sctp", "9"]
    # args without command go to the default entrypoint, like an image's CMD override
    assert container_argv({"name": "c", "args": ["probe", "x"]}, {}) == [
        *WORKLOAD_ENTRYPOINT, "probe", "x"]


def test_env_has_pod_identity_plain_values_field_refs_and_expansion():
    spec = {"name": "c", "command": ["sh", "-c", "echo $(GREETING) $$(NOT)"],
            "env": [{"name": "WHO", "value": "$(POD_NAME)-x"},
                    {"name": "GREETING", "value": "hi $(WHO)"},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {
                        "fieldPath": "metadata.labels['app']"}}}]}
    env = container_env(spec, POD, "10.0.0.7", "node1", "192.168.77.11")
    assert env["POD_NAME"] == "web" and env["POD_NAMESPACE"] == "ns1"
    assert env["POD_IP"] == "10.0.0.7" and env["NODE_NAME"] == "node1"
    assert env["WHO"] == "web-x" and env["GREETING"] == "hi web-x"
    assert env["IP"] == "10.0.0.7" and env["APP"] == "web"
    assert container_argv(spec, env) == ["sh", "-c", "echo hi web-x $(NOT)"]
    assert expand("$(UNKNOWN)", env) == "$(UNKNOWN)"


def test_container_process_exit_restart_backoff_and_stop(tmp_path: Path):
    c = Container({"name": "c", "command": ["sh", "-c", "echo $POD_NAME; exit 4"]}, tmp_path)
    c.start(None, {"PATH": "/usr/bin:/bin", "POD_NAME": "web"})
    deadline = time.monotonic() + 5
    while c.running():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert c.state.exit_code == 4 and c.state.reason == "Error"
    assert (tmp_path / "c.log").read_text() == "web\n"
    first = c.schedule_restart()
    assert first > time.time()
    second_backoff = (c.schedule_restart(), c.state.backoff)[1]
    assert second_backoff == 2.0  # doubles while the container keeps failing fast
    assert c.status()["state"]["waiting"]["reason"] == "CrashLoopBackOff"

    c2 = Container({"name": "c", "command": ["sleep", "60"]}, tmp_path)  # re-adopts state
    assert c2.state.exit_code == 4 and c2.state.container_id == c.state.container_id
    c2.state.next_start = 0
    c2.start(None, {"PATH": "/usr/bin:/bin"})
    assert c2.state.restart_count == 1
    assert c2.status()["lastState"]["terminated"]["exitCode"] == 4
    pid = c2.state.pid
    adopted = Container({"name": "c"}, tmp_path)  # a restarted kubelet sees it running
    assert adopted.running() and adopted.state.pid == pid
    c2.stop(grace=2)
    assert not c2.running()
    assert c2.state.exit_code == 128 + 15  # SIGTERM
    assert not adopted.alive()


def test_phase_follows_restart_policy(tmp_path: Path):
    def exited(code: int) -> Container:
        c = Container({"name": f"c{code}"}, tmp_path)
        c.state.container_id = "x"
        c.state.exit_code = code
        return c

    assert phase("Never", [exited(0), exited(0)]) == "Succeeded"
    assert phase("Never", [exited(0), exited(1)]) == "Failed"
    assert phase("OnFailure", [exited(0)]) == "Succeeded"
    assert phase("OnFailure", [exited(2)]) == "Running"
    assert phase("Always", [exited(0)]) == "Running"
    assert phase("Always", [Container({"name": "new"}, tmp_path)]) == "Pending"


def test_pod_status_reports_ips_conditions_and_keeps_transition_times(tmp_path: Path):
    c = Container({"name": "web", "image": "nginx"}, tmp_path)
    c.state.container_id, c.state.pid, c.state.started_at = "abc", 99, "2024-01-01T00:00:00Z"
    c.state.ready = True
    transitions: dict[str, str] = {}
    st = pod_status(pod=POD, containers=[c], pod_ips=["10.0.0.5", "fd00::5"],
                    host_ip="192.168.77.11", start_time="t0", sandbox_ready=True,
                    transitions=transitions)
    assert st["phase"] == "Running"
    assert st["podIP"] == "10.0.0.5"
    assert st["podIPs"] == [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]
    assert st["hostIPs"] == [{"ip": "192.168.77.11"}]
    conds = {x["type"]: x for x in st["conditions"]}
    assert conds["Ready"]["status"] == conds["ContainersReady"]["status"] == "True"
    (cs,) = st["containerStatuses"]
    assert cs["containerID"] == "antrea-lab://abc" and cs["image"] == "nginx"
    assert cs["state"] == {"running": {"startedAt": "2024-01-01T00:00:00Z"}}
    waiting = pod_status(pod=POD, containers=[c], pod_ips=[], host_ip="h", start_time="t0",
                         sandbox_ready=False, transitions={})
    assert waiting["phase"] == "Pending" and "podIP" not in waiting
    again = pod_status(pod=POD, containers=[c], pod_ips=["10.0.0.5"], host_ip="h",
                       start_time="t0", sandbox_ready=True, transitions=transitions)
    assert again["conditions"] == st["conditions"]


def test_node_ready_condition_tracks_network_and_transition_time():
    transitions: dict[str, str] = {}
    status = node_status.node_status("node1", "192.168.77.11", False, transitions)
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "False"
    assert "NetworkPluginNotReady" in ready["message"]
    assert "cni config uninitialized" in ready["message"]
    assert status["nodeInfo"]["osImage"] == "Antrea lab (Debian 12)"
    assert status["capacity"]["pods"] == "110"
    assert {"type": "InternalIP", "address": "192.168.77.11"} in status["addresses"]
    now_ready = node_status.node_status("node1", "192.168.77.11", True, transitions)
    assert {c["type"]: c for c in now_ready["conditions"]}["Ready"]["status"] == "True"
    obj = node_status.node_object("node1", "192.168.77.11", True, {})
    assert obj["metadata"]["labels"]["kubernetes.io/hostname"] == "node1"
    assert "NetworkUnavailable" in {c["type"] for c in obj["status"]["conditions"]}
    lease = node_status.lease_object("node1", "uid-1")
    assert lease["spec"]["holderIdentity"] == "node1"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_bridge_conflist_covers_dual_stack_and_is_written_once(tmp_path: Path):
    conf = bridge_cni.bridge_conflist(["10.244.1.0/24", "fd00:10:244:1::/64"], tmp_path)
    bridge, portmap = conf["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0" and bridge["isGateway"]
    assert bridge["ipMasq"] is False and bridge["hairpinMode"] is True
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}],
                                        [{"subnet": "fd00:10:244:1::/64"}]]
    assert portmap["capabilities"] == {"portMappings": True}
    assert bridge_cni.install(tmp_path / "d", ["10.244.1.0/24"], tmp_path)
    assert not bridge_cni.install(tmp_path / "d", ["10.244.1.0/24"], tmp_path)
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["10-lab-bridge.conflist"]


def test_sandbox_record_round_trips_and_netns_name_uses_uid_prefix(tmp_path: Path):
    sb = Sandbox.new("lab1", tmp_path, POD)
    expected = "antrea-lab1-pod-1234abcd5678"
    assert sb.netns == pod_netns_name("lab1", POD["metadata"]["uid"]) == expected
    assert Path(sb.dir).name == "ns1_web_1234abcd-5678-90ef-aaaa-bbbb"
    sb.cni_result = {"ips": []}
    sb.save()
    (loaded,) = load_all(tmp_path)
    assert loaded == sb
    host = Sandbox.new("lab1", tmp_path, {**POD, "spec": {"hostNetwork": True}})
    assert host.netns == "" and host.host_network


def test_pod_workers_serialise_per_uid_and_coalesce():
    running: dict[str, int] = {}
    overlap = []
    calls: list[str] = []
    lock = threading.Lock()
    release = threading.Event()

    def sync(uid: str) -> None:
        with lock:
            running[uid] = running.get(uid, 0) + 1
            if running[uid] > 1:
                overlap.append(uid)
            calls.append(uid)
        if uid == "a":
            release.wait(2)
        with lock:
            running[uid] -= 1

    w = PodWorkers(sync, workers=4)
    try:
        for _ in range(5):
            w.enqueue("a")
        w.enqueue("b")
        w.enqueue("c", delay=0.2)
        time.sleep(0.1)
        assert calls.count("b") == 1 and "c" not in calls
        release.set()
        deadline = time.monotonic() + 3
        while (w.busy() or "c" not in calls) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not overlap
        assert calls.count("a") == 2  # the running sync, then one coalesced re-run
        assert calls.count("c") == 1
    finally:
        w.stop()
