"""The agent query API's flow dump: table ids become names, pod flows are picked whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from antrea_core.agent.apiserver import flows as flowdump
from antrea_core.agent.openflow.core_tables import core_tables
from antrea_core.agent.openflow.pipeline import PipelineLayout

pytestmark = pytest.mark.unit
LAYOUT = PipelineLayout.build(core_tables())
ROOT = Path(__file__).resolve().parents[3]


def _id(name: str) -> int:
    return LAYOUT.table_id(name)


def test_table_goto_and_resubmit_ids_become_names():
    line = (f"cookie=0x1, duration=2.1s, table={_id('Classifier')}, n_packets=0, n_bytes=0, "
            f"priority=200,in_port=4 actions=resubmit(,{_id('Output')}),"
            f"goto_table:{_id('SpoofGuard')}")
    dumped = flowdump.name_tables(line, LAYOUT)
    assert dumped.table == "Classifier" and dumped.table_id == _id("Classifier")
    assert dumped.flow == ("cookie=0x1, duration=2.1s, table=Classifier, n_packets=0, "
                           "n_bytes=0, priority=200,in_port=4 actions=resubmit(,Output),"
                           "goto_table:SpoofGuard")


def test_unknown_table_id_stays_a_number():
    dumped = flowdump.name_tables("cookie=0x0, table=250, priority=0 actions=drop", LAYOUT)
    assert dumped.table == "" and dumped.table_id == 250
    assert "table=250," in dumped.flow


@pytest.mark.parametrize("flow, matches", [
    ("priority=200,ip,nw_src=10.244.0.2 actions=goto_table:X", True),
    ("priority=200,ip,nw_dst=10.244.0.2/32 actions=drop", True),
    ("priority=200,ip,nw_dst=10.244.0.20 actions=drop", False),
    ("priority=200,arp,arp_spa=110.244.0.2 actions=drop", False),
    ("priority=200,in_port=4 actions=goto_table:X", True),
    ("priority=200,in_port=41 actions=goto_table:X", False),
    ("priority=200,reg1=0x4 actions=output:4", True),
    ("priority=200,reg1=0x4 actions=output:44", False),
    ("priority=200,dl_dst=AA:BB:CC:00:00:02 actions=set_field:0x4->reg1", True),
    ("priority=200 actions=set_field:aa:bb:cc:00:00:02->eth_dst", True),
    ("priority=200,dl_dst=aa:bb:cc:00:00:021 actions=drop", False),
])
def test_pod_filter_matches_whole_values_only(flow, matches):
    pod = flowdump.pod_filter(4, ["10.244.0.2"], "aa:bb:cc:00:00:02")
    dumped = flowdump.DumpedFlow(0, "T", flow)
    assert bool(flowdump.select([dumped], [pod])) is matches


def test_dump_of_a_missing_socket_raises_flow_dump_error(tmp_path):
    with pytest.raises(flowdump.FlowDumpError) as info:
        flowdump.dump_raw(tmp_path / "br-int.mgmt")
    assert "br-int.mgmt" in str(info.value)


def test_checked_in_agentquery_code_is_not_stale(tmp_path):
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        pytest.fail("grpcio-tools is not installed; it is needed to check the generated code")
    proc = subprocess.run(["bash", str(ROOT / "hack" / "gen-proto.sh"), str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    for name in ("agentquery_pb2.py", "agentquery_pb2_grpc.py"):
        fresh = (tmp_path / "antrea_core" / "apis" / name).read_text()
        checked_in = (ROOT / "antrea_core" / "apis" / name).read_text()
        assert fresh == checked_in, f"{name} is stale: run bash hack/gen-proto.sh"


@pytest.mark.parametrize("flow, matches", [
    ("priority=200,ipv6,ipv6_src=fd00::2 actions=drop", True),
    ("priority=200,ipv6,ipv6_src=fd00::20 actions=drop", False),
    ("priority=200,ipv6,ipv6_src=ffd00::2 actions=drop", False),
    ("priority=200,ipv6,ipv6_dst=1:fd00::2 actions=drop", False),
])
def test_pod_filter_matches_whole_ipv6_addresses(flow, matches):
    pod = flowdump.pod_filter(None, ["fd00::2"], "")
    assert bool(flowdump.select([flowdump.DumpedFlow(0, "T", flow)], [pod])) is matches
