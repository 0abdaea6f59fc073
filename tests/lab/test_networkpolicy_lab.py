"""NetworkPolicy enforcement in a 2-node `--cni antrea` lab, under failures.

One lab for the module. Pods in namespace `np`: `srv` (app=srv) on node1 is the pod the
policies isolate; `o1` (node1, role=ops) and `o2` (node2) are other pods; `allowed`
(node2, access=yes) is the peer the allow rule names. The tests run in file order and
build on each other's policies: default deny + allow rule, then the controller killed
(a policy created meanwhile), then an agent killed; probes must never see a denied
connection get through at any point.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from waiting import wait_for

from antrea_lab import cluster, probe, processes
from antrea_lab.labdir import LabDir
from antrea_lab.node import ovs

pytestmark = pytest.mark.lab

NS = "np"
PODS = {  # name -> (node, labels)
    "srv": ("node1", {"app": "srv"}),
    "o1": ("node1", {"role": "ops"}),
    "o2": ("node2", {}),
    "allowed": ("node2", {"access": "yes"}),
}
API_PORTS = range(56443, 56450)  # this module's share of the machine's ports
POLICY_COOKIE = 0x03  # top byte of the network-policy feature's cookies

# A TCP session kept open in a pod's netns: one echo round trip per line read on stdin,
# answering "ok" or "fail <reason>" (the lab's echo server repeats each line).
SESSION = r'''
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print("connected", flush=True)
for n, _ in enumerate(sys.stdin):
    try:
        s.settimeout(3)
        line = f"ping {n}\n".encode()
        s.sendall(line)
        got = b""
        while not got.endswith(b"\n"):
            chunk = s.recv(100)
            if not chunk:
                raise ConnectionError("closed")
            got += chunk
        print("ok" if got == line else f"fail {got!r}", flush=True)
    except OSError as exc:
        print(f"fail {exc}", flush=True)
'''


def _api_port() -> int:
    for port in API_PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free API port in {API_PORTS}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDir]:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces, Open vSwitch)")
    lab = LabDir(f"hh-np{os.getpid() % 1000}", root=tmp_path_factory.mktemp("hh-np-lab"))
    try:
        cluster.up(lab, 2, cni="antrea", api_port=_api_port(),
                   progress=lambda m: print(m, file=sys.stderr))
        api = _core(lab)
        api.create_namespace({"metadata": {"name": NS}})
        for name, (node, labels) in PODS.items():
            _create_pod(api, name, node, labels)
        for name in PODS:
            wait_for(lambda n=name: _running(api, n), 120, f"pod {name} running", every=0.3)
        yield lab
    finally:
        cluster.down(lab, progress=lambda m: print(m, file=sys.stderr))


# -- helpers ------------------------------------------------------------------------------

def _core(lab: LabDir) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.kube_client(lab))


def _net(lab: LabDir) -> client.NetworkingV1Api:
    return client.NetworkingV1Api(cluster.kube_client(lab))


def _create_pod(api: client.CoreV1Api, name: str, node: str, labels: dict[str, str]) -> None:
    api.create_namespaced_pod(NS, {
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "echo", "ports": [
            {"containerPort": 80, "protocol": "TCP"}]}]}})


def _running(api: client.CoreV1Api, name: str) -> client.V1Pod | None:
    pod = api.read_namespaced_pod(name, NS)
    return pod if pod.status.phase == "Running" and pod.status.pod_ip else None


def _endpoint(lab: LabDir, name: str) -> probe.PodEndpoint:
    (endpoint,) = probe.pod_endpoints(lab, [_core(lab).read_namespaced_pod(name, NS)])
    return endpoint


def _reach(lab: LabDir, sources: list[str], dst: str, timeout: float = 1.0
           ) -> dict[str, bool]:
    """TCP connect + echo from each source pod to `dst`:80."""
    target = f"{_endpoint(lab, dst).ip}:80"
    return {src: probe.probe_from(_endpoint(lab, src), [target], "tcp", timeout)[target][0]
            for src in sources}


def _wait_reach(lab: LabDir, expected: dict[str, bool], dst: str, what: str,
                timeout: float = 30) -> None:
    wait_for(lambda: _reach(lab, list(expected), dst) == expected, timeout, what, every=0.5)


def _policy(name: str, ingress: list[dict]) -> dict:
    return {"metadata": {"name": name, "namespace": NS},
            "spec": {"podSelector": {"matchLabels": {"app": "srv"}},
                     "policyTypes": ["Ingress"], "ingress": ingress}}


def _from_labels(**labels: str) -> dict:
    return {"from": [{"podSelector": {"matchLabels": labels}}],
            "ports": [{"protocol": "TCP", "port": 80}]}


def _antctl(lab: LabDir, *args: str) -> str:
    argv = [str(Path(sys.executable).parent / "antrea-lab"), "--name", lab.name, "antctl",
            *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ANTREA_LAB_DIR": str(lab.path)})
    assert proc.returncode == 0, f"antctl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _policy_flows(lab: LabDir, node: str) -> list[tuple[int, str]]:
    """(cookie round, flow) of the network-policy feature, conjunction ids masked: they
    are allocated per agent run."""
    out = ovs.ofctl(lab.ovs_dirs(node), "-O", "OpenFlow15", "--no-stats", "dump-flows",
                    "br-int")
    flows = []
    for line in out.splitlines():
        m = re.match(r"\s*cookie=0x([0-9a-f]+),?\s*(.*)", line)
        if not m:
            continue
        cookie = int(m.group(1), 16)
        if cookie >> 56 != POLICY_COOKIE:
            continue
        flow = re.sub(r"conjunction\(\d+,", "conjunction(N,", m.group(2))
        flow = re.sub(r"conj_id=\d+", "conj_id=N", flow)
        flow = re.sub(r"set_field:0x[0-9a-f]+->reg([56])", r"set_field:N->reg\1", flow)
        flows.append(((cookie >> 48) & 0xFF, flow.strip()))
    return flows


class Session:
    """A TCP connection from `src` to `dst`:80 that stays open across the test."""

    def __init__(self, lab: LabDir, src: str, dst: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", _endpoint(lab, src).netns, sys.executable, "-c", SESSION,
             _endpoint(lab, dst).ip, "80"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        assert first == "connected", first + self.proc.stderr.read()  # type: ignore[union-attr]

    def round_trip(self) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def session(lab: LabDir) -> Iterator[list[Session]]:
    """The allowed peer's long-lived connection to srv, opened by the first test once
    the allow rule is in place; later tests check it still works."""
    holder: list[Session] = []
    yield holder
    for s in holder:
        s.close()


# -- tests --------------------------------------------------------------------------------

def test_default_deny_isolates_srv_from_both_nodes_and_the_allow_rule_reopens_its_peer(
        lab: LabDir, session: list[Session]):
    everyone = ["o1", "o2", "allowed"]
    _wait_reach(lab, dict.fromkeys(everyone, True), "srv", "srv open before any policy")
    net = _net(lab)

    net.create_namespaced_network_policy(NS, _policy("deny-all", []))
    _wait_reach(lab, dict.fromkeys(everyone, False), "srv",
                "srv isolated from pods of node1 and node2")
    # Ingress isolation only: srv still opens connections, and their replies pass.
    assert _reach(lab, ["srv"], "o2") == {"srv": True}

    net.create_namespaced_network_policy(NS, _policy("allow-access",
                                                     [_from_labels(access="yes")]))
    _wait_reach(lab, {"allowed": True}, "srv", "the labelled peer allowed again")
    assert _reach(lab, ["o1", "o2"], "srv") == {"o1": False, "o2": False}
    session.append(Session(lab, "allowed", "srv"))
    assert session[0].round_trip() == "ok"


def test_antctl_shows_the_policies_span_pod_interfaces_and_conjunction_flows(lab: LabDir):
    table = _antctl(lab, "get", "netpol")
    rows = {line.split()[1]: line.split() for line in table.splitlines()[1:]}
    # srv is the only pod the policies apply to: they span node1 only.
    for name in ("deny-all", "allow-access"):
        row = rows[f"K8sNetworkPolicy:{NS}/{name}"]
        assert row[-1] == "node1", table

    interfaces = _antctl(lab, "--node", "node1", "get", "podinterface", "-n", NS)
    names = {line.split()[1] for line in interfaces.splitlines()[1:]}
    assert {"srv", "o1"} <= names and not names & {"o2", "allowed"}, interfaces

    flows = _antctl(lab, "--node", "node1", "get", "ovsflows", "-T", "IngressRule")
    allowed_ip = _endpoint(lab, "allowed").ip
    srv_port = _ofport(lab, "node1", "srv")
    peer = [f for f in flows.splitlines() if f"nw_src={allowed_ip}" in f]
    local = [f for f in flows.splitlines() if re.search(rf"reg1={hex(srv_port)}\b", f)]
    assert peer and all("conjunction(" in f for f in peer), flows
    assert local and all("conjunction(" in f for f in local), flows
    assert any("conj_id=" in f for f in flows.splitlines()), flows


def _ofport(lab: LabDir, node: str, pod: str) -> int:
    out = ovs.vsctl(lab.ovs_dirs(node), "--bare", "--columns=ofport", "find", "Interface",
                    f"external_ids:pod-name={pod}", f"external_ids:pod-namespace={NS}")
    return int(out.strip())


def test_with_the_controller_down_policies_stay_new_pods_get_network_and_changes_converge(
        lab: LabDir, session: list[Session]):
    state = lab.load()
    assert state is not None
    pid = state.pids[cluster.CONTROLLER]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not processes.is_ours(pid, str(lab.path)), 30, "controller gone")
    try:
        time.sleep(2)  # the agents notice the broken stream
        # Never fail open: the isolation holds and the allowed session keeps working.
        assert _reach(lab, ["o1", "o2", "allowed"], "srv") == {
            "o1": False, "o2": False, "allowed": True}
        assert session[0].round_trip() == "ok"

        # A pod created on node1 meanwhile is networked.
        api = _core(lab)
        _create_pod(api, "late1", "node1", {})
        wait_for(lambda: _running(api, "late1"), 120, "late1 running", every=0.3)
        assert _reach(lab, ["o1", "o2"], "late1") == {"o1": True, "o2": True}
        assert _reach(lab, ["late1"], "srv") == {"late1": False}

        # A policy made now takes effect only once the controller is back.
        _net(lab).create_namespaced_network_policy(NS, _policy("allow-ops",
                                                               [_from_labels(role="ops")]))
        time.sleep(2)
        assert _reach(lab, ["o1"], "srv") == {"o1": False}
    finally:
        cluster.restart(lab, cluster.CONTROLLER)

    _wait_reach(lab, {"o1": True}, "srv", "allow-ops enforced after the controller restart",
                timeout=60)
    assert _reach(lab, ["o2", "late1", "allowed"], "srv") == {
        "o2": False, "late1": False, "allowed": True}
    assert session[0].round_trip() == "ok"


def test_isolation_holds_while_an_agent_restarts_and_its_flows_converge(
        lab: LabDir, session: list[Session]):
    before = _policy_flows(lab, "node1")
    assert len({r for r, _ in before}) == 1 and before
    denied = ["o2", "late1"]
    leaks: list[str] = []
    rounds = Counter[str]()
    stop = threading.Event()
    target = f"{_endpoint(lab, 'srv').ip}:80"
    sources = {name: _endpoint(lab, name) for name in denied}

    def probe_loop() -> None:
        while not stop.is_set():
            for name, src in sources.items():
                ok, _ = probe.probe_from(src, [target], "tcp", 0.5)[target]
                rounds[name] += 1
                if ok:
                    leaks.append(f"{name} reached srv at {time.strftime('%X')}")

    prober = threading.Thread(target=probe_loop, daemon=True)
    prober.start()
    try:
        time.sleep(1)
        cluster.restart(lab, "node1-antrea-agent", kill=True)

        def converged() -> bool:
            after = _policy_flows(lab, "node1")
            old_round = before[0][0]
            return (bool(after) and all(r != old_round for r, _ in after)
                    and Counter(f for _, f in after) == Counter(f for _, f in before))

        wait_for(converged, 90, "node1's policy flows replaced by the new agent's snapshot",
                 every=0.5)
        time.sleep(1)
    finally:
        stop.set()
        prober.join(30)
    assert not leaks, leaks
    assert min(rounds[n] for n in denied) >= 3, rounds  # the loop really ran throughout
    assert _reach(lab, ["o1", "allowed", "o2"], "srv") == {
        "o1": True, "allowed": True, "o2": False}
    assert session[0].round_trip() == "ok"


def _flow_ages(lab: LabDir, node: str) -> list[tuple[int, float, str]]:
    """(cookie feature byte, seconds since installed, flow) of every flow, in one dump."""
    out = ovs.ofctl(lab.ovs_dirs(node), "-O", "OpenFlow15", "dump-flows", "br-int")
    ages = []
    for line in out.splitlines():
        m = re.match(r"\s*cookie=0x([0-9a-f]+), duration=([\d.]+)s", line)
        if m:
            ages.append((int(m.group(1), 16) >> 56, float(m.group(2)), line))
    return ages


def test_a_new_pod_selected_by_the_policy_is_isolated_before_its_flows_exist(lab: LabDir):
    api = _core(lab)
    _create_pod(api, "srv2", "node1", {"app": "srv"})
    pod = wait_for(lambda: _running(api, "srv2"), 120, "srv2 running", every=0.3)
    port = _ofport(lab, "node1", "srv2")
    ages = _flow_ages(lab, "node1")
    # Its default-deny flow went in before any of its forwarding flows (the agent tells
    # the policy enforcement about the pod before installing them, and the controller
    # had put the scheduled pod into the policy's group before it had an IP).
    deny = [age for feature, age, flow in ages if feature == POLICY_COOKIE
            and re.search(rf"reg1={hex(port)}\b", flow) and "actions=drop" in flow]
    forwarding = [age for feature, age, flow in ages if feature != POLICY_COOKIE and (
        re.search(rf"in_port={port}\b", flow)
        or re.search(rf"nw_dst={re.escape(pod.status.pod_ip)}\b", flow))]
    assert len(deny) == 1 and forwarding, ages
    assert deny[0] >= max(forwarding), (deny, forwarding)
    print(f"srv2: deny flow in {1000 * (deny[0] - max(forwarding)):.0f} ms before its "
          "forwarding flows", file=sys.stderr)
    assert _reach(lab, ["o2", "late1", "allowed"], "srv2") == {
        "o2": False, "late1": False, "allowed": True}
