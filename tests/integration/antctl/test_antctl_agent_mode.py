"""antctl's agent mode against a real agent query server, interface store and OVS bridge."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from antctl_node import PODS, AgentNode

from antrea_core.agent.apiserver import AgentQueryServer
from antrea_core.apis import agentquery_pb2 as pb
from antrea_core.apis import agentquery_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration
ANTCTL = [sys.executable, "-m", "antrea_core.antctl"]


def antctl(node: AgentNode, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ANTCTL, "get", *args, "--agent-socket", str(node.socket)],
                          capture_output=True, text=True, timeout=120, check=False)


def flow_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_socket_is_private_to_root(agent_node: AgentNode):
    assert stat.S_IMODE(agent_node.socket.stat().st_mode) == 0o600


def test_ovsflows_by_table_name_shows_only_that_table(agent_node: AgentNode):
    proc = antctl(agent_node, "ovsflows", "-T", "Classifier")
    assert proc.returncode == 0, proc.stderr
    lines = flow_lines(proc.stdout)
    raw = agent_node.ovs.ofctl(
        "-O", "OpenFlow15", "dump-flows", "br-int",
        f"table={agent_node.layout.table_id('Classifier')}").stdout
    assert len(lines) == len(flow_lines(raw)) - 1  # minus the reply header
    assert all("table=Classifier," in line for line in lines)
    # Each pod's port is classified, and gotos name the next table instead of its id.
    for pod in PODS:
        ofport = agent_node.store.get(pod.veth).ofport
        assert any(f"in_port={ofport} " in line or f"in_port={ofport}," in line
                   for line in lines), lines
    assert any("goto_table:SpoofGuard" in line for line in lines), lines


def test_ovsflows_unknown_table_fails_with_the_known_names(agent_node: AgentNode):
    proc = antctl(agent_node, "ovsflows", "-T", "NoSuchTable")
    assert proc.returncode == 1
    assert "NoSuchTable" in proc.stderr and "Classifier" in proc.stderr
    assert proc.stdout == ""


def test_ovsflows_of_one_pod_name_its_ip_mac_and_port(agent_node: AgentNode):
    web, db = PODS
    proc = antctl(agent_node, "ovsflows", "-p", web.name, "-n", web.namespace, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    flows = json.loads(proc.stdout)
    tables = {f["table"] for f in flows}
    assert {"Classifier", "SpoofGuard", "L2ForwardingCalc"} <= tables, tables
    web_port = agent_node.store.get(web.veth).ofport
    db_port = agent_node.store.get(db.veth).ofport
    for f in flows:
        text = f["flow"]
        assert (web.ip in text or web.mac in text or f"in_port={web_port}" in text
                or f"output:{web_port}" in text), text
        assert db.ip not in text and db.mac not in text
        assert f"in_port={db_port}," not in text and f"in_port={db_port} " not in text
        assert f["tableID"] == agent_node.layout.table_id(f["table"])


def test_ovsflows_of_a_pod_not_on_this_node_is_not_found(agent_node: AgentNode):
    proc = antctl(agent_node, "ovsflows", "-p", "ghost", "-n", "default")
    assert proc.returncode == 1
    assert "default/ghost" in proc.stderr


def test_podinterface_lists_the_store_entries(agent_node: AgentNode):
    proc = antctl(agent_node, "podinterface")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "INTERFACE-NAME", "IP", "MAC", "OF-PORT",
                              "CONTAINER-ID"]
    assert len(rows) == len(PODS)
    for pod in PODS:
        ofport = agent_node.store.get(pod.veth).ofport
        assert ofport and ofport > 0
        assert any(row.split()[:6] == [pod.namespace, pod.name, pod.veth, pod.ip, pod.mac,
                                       str(ofport)] for row in rows), rows


def test_podinterface_by_name_and_namespace_as_yaml(agent_node: AgentNode):
    import yaml

    web = PODS[0]
    proc = antctl(agent_node, "pi", web.name, "-n", web.namespace, "-o", "yaml")
    assert proc.returncode == 0, proc.stderr
    item = yaml.safe_load(proc.stdout)
    assert item["podName"] == web.name and item["ips"] == [web.ip]
    assert item["ofPort"] == agent_node.store.get(web.veth).ofport
    missing = antctl(agent_node, "pi", web.name, "-n", "elsewhere")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_ovstables_counts_the_flows_of_each_table(agent_node: AgentNode):
    proc = antctl(agent_node, "ovstables", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    tables = {t["name"]: t for t in json.loads(proc.stdout)}
    assert list(tables) == [t.name for t in agent_node.layout.tables()]
    classifier = agent_node.layout.table_id("Classifier")
    raw = agent_node.ovs.ofctl("-O", "OpenFlow15", "dump-flows", "br-int",
                               f"table={classifier}").stdout
    assert tables["Classifier"]["flowCount"] == len(flow_lines(raw)) - 1
    assert tables["Classifier"]["stage"] == "CLASSIFIER"


def test_flow_dump_failure_is_unavailable_not_a_crash(agent_node: AgentNode, tmp_path: Path):
    sock = Path("/tmp") / f"hEbad{tmp_path.name[-6:]}.sock"
    server = AgentQueryServer(sock, agent_node.store, agent_node.layout, "br-missing",
                              agent_node.run_dir)
    server.start()
    try:
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            stub = pb_grpc.AgentQueryStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.DumpFlows(pb.FlowRequest(), timeout=60)
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
            # Pod interfaces do not need the bridge: still served.
            assert len(stub.ListPodInterfaces(pb.PodInterfaceRequest()).items) == len(PODS)
    finally:
        server.stop()
    assert not sock.exists()


def test_unreachable_agent_exits_3(tmp_path: Path):
    proc = subprocess.run([*ANTCTL, "get", "podinterface", "--agent-socket",
                           str(tmp_path / "none.sock")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 3
    assert "none.sock" in proc.stderr
