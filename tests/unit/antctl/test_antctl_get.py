"""`antctl get` end to end through the CLI, with a fake controller and a fake agent."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from controlplane_samples import AG, ATG, OTHER_POLICY, POLICY, FakeQuery
from typer.testing import CliRunner

from antrea_core.agent.controlplane.client import QueryError
from antrea_core.antctl import main, resources
from antrea_core.antctl.controller_client import ControllerView
from antrea_core.antctl.errors import (
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    NotFound,
    UsageError,
)
from antrea_core.apis import agentquery_pb2 as pb
from antrea_core.apis.controlplane import ObjectKind

pytestmark = pytest.mark.unit


class FakeAgent:
    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.closed = False

    def pod_interfaces(self, namespace: str = "", name: str = "") -> list[pb.PodInterface]:
        self.requests.append(("pods", (namespace, name)))
        pods = [pb.PodInterface(pod_namespace="demo", pod_name="web-a", interface_name="w-1",
                                ips=["10.244.1.2"], ofport=4)]
        return [p for p in pods if (not namespace or p.pod_namespace == namespace)
                and (not name or p.pod_name == name)]

    def flows(self, table: str = "", pod_namespace: str = "", pod_name: str = ""
              ) -> list[pb.Flow]:
        self.requests.append(("flows", (table, pod_namespace, pod_name)))
        if table == "Nope":
            raise NotFound("no table 'Nope' in the pipeline; tables: Classifier")
        return [pb.Flow(table="Classifier", table_id=3, flow="table=Classifier, x")]

    def tables(self) -> list[pb.Table]:
        return [pb.Table(name="Classifier", table_id=3, stage="CLASSIFIER", pipeline="IP",
                         next_table="SpoofGuard", miss="drop", flow_count=4)]

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_controller(monkeypatch: pytest.MonkeyPatch) -> FakeQuery:
    fake = FakeQuery()
    monkeypatch.setattr(main, "controller_factory",
                        lambda kubeconfig, address: lambda: ControllerView(fake, "10.0.0.1:10349"))
    return fake


@pytest.fixture
def fake_agent(monkeypatch: pytest.MonkeyPatch) -> FakeAgent:
    fake = FakeAgent()
    monkeypatch.setattr(main, "AgentQueryClient", lambda socket_path: fake)
    return fake


def antctl(*args: str) -> Any:
    return CliRunner().invoke(main.app, list(args))


@pytest.mark.parametrize("name", ["networkpolicy", "networkpolicies", "netpol", "NetPol"])
def test_policy_names_and_short_names_resolve(name):
    assert resources.resolve(name).kind is ObjectKind.NETWORK_POLICY


@pytest.mark.parametrize("name, kind", [("atg", ObjectKind.APPLIED_TO_GROUP),
                                        ("appliedtogroups", ObjectKind.APPLIED_TO_GROUP),
                                        ("ag", ObjectKind.ADDRESS_GROUP),
                                        ("addressgroup", ObjectKind.ADDRESS_GROUP)])
def test_group_short_names_resolve(name, kind):
    assert resources.resolve(name).kind is kind


def test_misspelt_resource_suggests_the_closest():
    with pytest.raises(UsageError) as info:
        resources.resolve("adressgroup")
    assert "did you mean addressgroup?" in info.value.message


def test_unrelated_resource_lists_the_known_ones():
    with pytest.raises(UsageError) as info:
        resources.resolve("pods")
    assert "known resources:" in info.value.message
    assert all(r.name in info.value.message for r in resources.RESOURCES)


def test_unknown_resource_exits_2_with_a_suggestion(fake_controller):
    result = antctl("get", "netpl")
    assert result.exit_code == EXIT_USAGE
    assert "did you mean networkpolicy?" in result.output
    assert fake_controller.calls == []


def test_get_policies_lists_a_table_sorted_by_name(fake_controller):
    result = antctl("get", "netpol")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[:4] == ["NAME", "REFERENCE", "APPLIED-TO-GROUPS", "RULES"]
    assert [r.split()[0] for r in rows] == sorted([POLICY.name, OTHER_POLICY.name])
    assert fake_controller.calls == [(ObjectKind.NETWORK_POLICY, None)]


def test_get_policies_in_a_namespace_filters_by_source(fake_controller):
    result = antctl("get", "netpol", "-n", "prod", "-o", "json")
    assert result.exit_code == 0, result.output
    assert [p["metadata"]["name"] for p in json.loads(result.output)] == [OTHER_POLICY.name]


def test_get_policy_by_internal_name_prints_the_object(fake_controller):
    result = antctl("get", "networkpolicy", POLICY.name, "-o", "json")
    assert result.exit_code == 0, result.output
    obj = json.loads(result.output)
    assert obj["metadata"]["name"] == POLICY.name and obj["span"] == ["node1", "node2"]
    assert fake_controller.calls == [(ObjectKind.NETWORK_POLICY, POLICY.name)]


@pytest.mark.parametrize("args", [("demo/allow-http",), ("allow-http", "-n", "demo")])
def test_get_policy_by_source_namespace_and_name(fake_controller, args):
    result = antctl("get", "netpol", *args, "-o", "yaml")
    assert result.exit_code == 0, result.output
    assert f"name: {POLICY.name}" in result.output


def test_missing_policy_exits_1_naming_what_was_looked_for(fake_controller):
    result = antctl("get", "netpol", "allow-http", "-n", "prod")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "prod/allow-http" in result.output


def test_missing_group_exits_1(fake_controller):
    result = antctl("get", "ag", "ag-nope")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "AddressGroup 'ag-nope' not found" in result.output


def test_get_groups_table(fake_controller):
    result = antctl("get", "atg")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split() == [ATG.name, "2", "2", "node1,node2"]
    result = antctl("get", "addressgroup", AG.name, "-o", "json")
    assert json.loads(result.output)["groupMembers"][0]["pod"]["name"] == "client"


@pytest.mark.parametrize("code, exit_code, words", [
    (grpc.StatusCode.UNAVAILABLE, EXIT_UNAVAILABLE, "cannot reach the antrea-controller at "
                                                    "10.0.0.1:10349"),
    (grpc.StatusCode.UNAUTHENTICATED, 1, "check the kubeconfig's credentials"),
    (grpc.StatusCode.INTERNAL, 1, "INTERNAL: boom"),
])
def test_controller_errors_exit_non_zero_with_a_clear_message(fake_controller, code,
                                                              exit_code, words):
    fake_controller.error = QueryError(code, "boom")
    result = antctl("get", "netpol")
    assert result.exit_code == exit_code
    assert words in result.output and "Traceback" not in result.output


def test_bad_output_format_exits_2(fake_controller):
    result = antctl("get", "netpol", "-o", "wide")
    assert result.exit_code == EXIT_USAGE
    assert fake_controller.calls == []


def test_table_option_is_only_for_flows(fake_controller):
    result = antctl("get", "netpol", "-T", "Classifier")
    assert result.exit_code == EXIT_USAGE
    assert "only applies to ovsflows" in result.output


def test_ovsflows_passes_table_and_pod_with_default_namespace(fake_agent):
    result = antctl("get", "ovsflows", "-T", "Classifier")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "table=Classifier, x"
    antctl("get", "of", "-p", "web-a")
    assert fake_agent.requests == [("flows", ("Classifier", "", "")),
                                   ("flows", ("", "default", "web-a"))]
    assert fake_agent.closed


def test_ovsflows_unknown_table_exits_1(fake_agent):
    result = antctl("get", "ovsflows", "-T", "Nope")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "tables: Classifier" in result.output


def test_podinterface_by_name_not_found_exits_1(fake_agent):
    result = antctl("get", "podinterface", "web-z", "-n", "demo")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "podinterface 'web-z' not found in namespace demo" in result.output


def test_podinterface_by_name_json_is_one_object(fake_agent):
    result = antctl("get", "pi", "web-a", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ofPort"] == 4


def test_ovstables_table(fake_agent):
    result = antctl("get", "ovstables")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split() == ["3", "Classifier", "CLASSIFIER", "IP",
                                                     "SpoofGuard", "drop", "4"]


def test_agent_commands_never_touch_the_cluster(fake_agent, monkeypatch):
    def no_cluster(*args: Any) -> Any:
        raise AssertionError("the controller was resolved for an agent resource")

    monkeypatch.setattr(main, "controller_factory", lambda kubeconfig, address: no_cluster)
    assert antctl("get", "podinterface").exit_code == 0


def test_missing_kubeconfig_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    result = antctl("get", "netpol")
    assert result.exit_code == 1
    assert f"no kubeconfig at {tmp_path / 'nope'}" in result.output


def test_policies_applied_to_a_pod(fake_controller):
    result = antctl("get", "netpol", "-p", "web-b", "-n", "demo", "-o", "json")
    assert result.exit_code == 0, result.output
    assert [p["metadata"]["name"] for p in json.loads(result.output)] == [POLICY.name]
    # client is only in an address group: no policy applies to it.
    result = antctl("get", "netpol", "-p", "client", "-n", "demo", "-o", "json")
    assert json.loads(result.output) == []


def test_pod_option_is_not_for_groups(fake_controller):
    result = antctl("get", "atg", "-p", "web-b")
    assert result.exit_code == EXIT_USAGE


def test_no_objects_prints_no_header_and_says_so(fake_controller):
    fake_controller.objects = []
    result = antctl("get", "ag")
    assert result.exit_code == 0
    assert result.output.strip() == "No resources found."
    result = antctl("get", "ag", "-o", "json")
    assert json.loads(result.output) == []


def test_antctl_default_socket_is_where_a_default_agent_serves():
    from antrea_core.agent.apiserver import default_socket_path
    from antrea_core.antctl.agent_client import DEFAULT_SOCKET
    from antrea_core.config.agent import AgentConfig

    assert str(default_socket_path(AgentConfig().cni_socket)) == DEFAULT_SOCKET


def test_the_controller_connection_is_closed_after_a_query(fake_controller):
    closed = []
    fake_controller.close = lambda: closed.append(True)
    assert antctl("get", "atg").exit_code == 0
    assert closed == [True]
