"""antrea-cni (the real binary) against the agent's CNI server with a fake handler."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from antrea_core.agent.cniserver import deferred_del
from antrea_core.agent.cniserver.errors import CNIError
from antrea_core.agent.cniserver.server import CNIServer
from antrea_core.apis import cni_pb2, cni_pb2_grpc
from antrea_core.plugins.context import CNIRequest

pytestmark = pytest.mark.unit
BIN = Path(sys.executable).parent / "antrea-cni"
RESULT = {
    "interfaces": [{"name": "p0-abcdef", "mac": "aa:aa:aa:aa:aa:aa"},
                   {"name": "eth0", "mac": "0a:58:0a:00:00:02", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 1},
            {"address": "fd00::2/64", "gateway": "fd00::1", "interface": 1}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
}


class FakeHandler:
    def __init__(self) -> None:
        self.calls: list[CNIRequest] = []
        self.fail: Exception | None = None
        self.delay = 0.0
        self.active: dict[str, int] = {}
        self.max_active = 0
        self._lock = threading.Lock()

    def _enter(self, req: CNIRequest) -> None:
        with self._lock:
            self.calls.append(req)
            self.active[req.container_id] = self.active.get(req.container_id, 0) + 1
            self.max_active = max(self.max_active, self.active[req.container_id])
        try:
            if self.delay:
                time.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
        finally:
            with self._lock:
                self.active[req.container_id] -= 1

    def add(self, request: CNIRequest) -> dict:
        self._enter(request)
        return RESULT

    def check(self, request: CNIRequest) -> None:
        self._enter(request)

    def delete(self, request: CNIRequest) -> None:
        self._enter(request)


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "antrea" / "cni.sock"


@pytest.fixture
def agent(sock_path: Path):
    handler = FakeHandler()
    server = CNIServer(sock_path, handler, max_workers=4)
    server.start()
    yield server, handler
    server.stop(grace=0)


def conf(sock_path: Path, version: str = "1.0.0", **extra) -> str:
    return json.dumps({"cniVersion": version, "name": "antrea", "type": "antrea",
                       "cniSocket": str(sock_path), **extra})


def run_cni(command: str, stdin: str, container_id: str = "c1", netns: str = "/run/netns/x",
            timeout: float = 30) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
           "CNI_PATH": "/opt/cni/bin",
           "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p0"}
    return subprocess.run([str(BIN)], input=stdin, capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_add_check_del_go_through_the_agent_and_result_matches_requested_version(
        agent, sock_path):
    _server, handler = agent
    add = run_cni("ADD", conf(sock_path, "0.4.0"))
    assert add.returncode == 0, add.stdout + add.stderr
    result = json.loads(add.stdout)
    assert result["cniVersion"] == "0.4.0"
    assert [ip["version"] for ip in result["ips"]] == ["4", "6"]
    assert result["interfaces"] == RESULT["interfaces"]
    req = handler.calls[0]
    assert (req.command, req.container_id, req.netns, req.ifname) == (
        "ADD", "c1", "/run/netns/x", "eth0")
    assert req.args["K8S_POD_NAME"] == "p0" and req.config["cniSocket"] == str(sock_path)
    for command in ("CHECK", "DEL"):
        proc = run_cni(command, conf(sock_path, "0.4.0"))
        assert proc.returncode == 0 and proc.stdout == "", proc.stdout
    assert [c.command for c in handler.calls] == ["ADD", "CHECK", "DEL"]


def test_handler_error_reaches_the_runtime_as_the_spec_error_document(agent, sock_path):
    _server, handler = agent
    handler.fail = CNIError(101, "no free address left in pod CIDR 10.0.0.0/24", "IPAM")
    proc = run_cni("ADD", conf(sock_path))
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == {"cniVersion": "1.0.0", "code": 101, "details": "IPAM",
                                       "msg": "no free address left in pod CIDR 10.0.0.0/24"}


def test_handler_crash_is_code_100_and_the_server_keeps_serving(agent, sock_path):
    _server, handler = agent
    handler.fail = RuntimeError("boom")
    err = json.loads(run_cni("ADD", conf(sock_path)).stdout)
    assert err["code"] == 100 and "RuntimeError: boom" in err["details"]
    handler.fail = None
    assert run_cni("ADD", conf(sock_path)).returncode == 0


def test_server_validates_what_it_receives(agent, sock_path):
    with grpc.insecure_channel(f"unix:{sock_path}") as channel:
        stub = cni_pb2_grpc.CniStub(channel)

        def add(**fields) -> cni_pb2.CmdResponse:
            args = dict(container_id="c1", netns="/run/netns/x", ifname="eth0",
                        network_configuration=b'{"cniVersion": "1.0.0"}')
            args.update(fields)
            return stub.CmdAdd(cni_pb2.CmdRequest(cni_args=cni_pb2.CmdArgs(**args)), timeout=5)

        missing = add(container_id="")
        assert missing.error.code == 4 and "CNI_CONTAINERID" in missing.error.message
        assert add(netns="").error.code == 4
        assert add(network_configuration=b"{").error.code == 6
        assert add(network_configuration=b'{"cniVersion": "9.9.9"}').error.code == 1
    assert agent[1].calls == []


def test_socket_is_0600_in_a_created_directory(agent, sock_path):
    assert stat.S_ISSOCK(sock_path.stat().st_mode)
    assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600


def test_second_server_refuses_a_live_socket_but_replaces_a_stale_one(agent, sock_path,
                                                                      tmp_path):
    with pytest.raises(RuntimeError, match="another process"):
        CNIServer(sock_path, FakeHandler()).start()
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # the file stays, nobody listens: what a crashed agent leaves
    server = CNIServer(stale, FakeHandler())
    server.start()
    try:
        assert run_cni("ADD", conf(stale)).returncode == 0
    finally:
        server.stop(grace=0)


def test_agent_down_add_fails_with_code_11_within_the_connect_timeout(sock_path):
    started = time.monotonic()
    proc = run_cni("ADD", conf(sock_path, connectTimeout=1))
    elapsed = time.monotonic() - started
    err = json.loads(proc.stdout)
    assert proc.returncode == 1 and err["code"] == 11
    assert str(sock_path) in err["details"]
    assert elapsed < 4, elapsed


def test_hung_agent_that_never_answers_is_code_11_not_a_hang(sock_path):
    sock_path.parent.mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen(16)  # the kernel accepts connections; nobody ever speaks HTTP/2
    try:
        started = time.monotonic()
        proc = run_cni("CHECK", conf(sock_path, connectTimeout=1))
        assert json.loads(proc.stdout)["code"] == 11
        assert time.monotonic() - started < 4
    finally:
        listener.close()


def test_slow_agent_answer_is_code_11_after_the_request_timeout(agent, sock_path):
    agent[1].delay = 3
    started = time.monotonic()
    err = json.loads(run_cni("ADD", conf(sock_path, requestTimeout=0.5)).stdout)
    assert err["code"] == 11 and "did not answer ADD" in err["msg"]
    assert time.monotonic() - started < 2.5


def test_del_with_agent_down_succeeds_and_is_replayed_when_the_agent_starts(sock_path):
    proc = run_cni("DEL", conf(sock_path, connectTimeout=0.5), netns="")
    assert proc.returncode == 0 and proc.stdout == ""
    assert "queued" in proc.stderr
    queued = deferred_del.pending(deferred_del.queue_dir_for(sock_path))
    assert [e.container_id for _, e in queued] == ["c1"]
    handler = FakeHandler()
    server = CNIServer(sock_path, handler)
    server.start()
    try:
        assert [(c.command, c.container_id, c.ifname) for c in handler.calls] == [
            ("DEL", "c1", "eth0")]
        assert handler.calls[0].args["K8S_POD_NAME"] == "p0"
        assert deferred_del.pending(deferred_del.queue_dir_for(sock_path)) == []
    finally:
        server.stop(grace=0)


def test_deferred_del_that_fails_in_the_agent_stays_queued(sock_path):
    deferred_del.record(deferred_del.queue_dir_for(sock_path), deferred_del.DeferredDel(
        container_id="c9", netns="", ifname="eth0", args="", path="",
        network_configuration='{"cniVersion": "1.0.0"}'))
    handler = FakeHandler()
    handler.fail = RuntimeError("ovsdb down")
    server = CNIServer(sock_path, handler)
    assert server.replay_deferred_deletes() == 0
    assert len(deferred_del.pending(deferred_del.queue_dir_for(sock_path))) == 1
    handler.fail = None
    assert server.replay_deferred_deletes() == 1


def test_status_reports_whether_the_agent_is_there(agent, sock_path, tmp_path):
    assert run_cni("STATUS", conf(sock_path)).returncode == 0
    down = run_cni("STATUS", conf(tmp_path / "none.sock", connectTimeout=0.3))
    assert json.loads(down.stdout)["code"] == 50


def test_calls_for_one_container_are_serialised_others_run_in_parallel(agent):
    server, handler = agent
    handler.delay = 0.2
    conf_bytes = b'{"cniVersion": "1.0.0"}'

    def call(cid: str) -> None:
        server.dispatch("ADD", cni_pb2.CmdArgs(container_id=cid, netns="/x", ifname="eth0",
                                               network_configuration=conf_bytes))

    threads = [threading.Thread(target=call, args=(cid,)) for cid in ("a", "a", "a", "b", "c")]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handler.max_active == 1
    # a's three calls in sequence (0.6 s) while b and c overlap them.
    assert time.monotonic() - started < 1.0
