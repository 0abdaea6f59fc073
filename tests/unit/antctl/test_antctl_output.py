"""antctl's views and renderers: camelCase JSON/YAML, kubectl-like tables."""

from __future__ import annotations

import json

import pytest
import yaml
from controlplane_samples import AG, ATG, OTHER_POLICY, POLICY, SPANS

from antrea_core.antctl import output, views
from antrea_core.antctl.errors import EXIT_USAGE, UsageError
from antrea_core.apis import agentquery_pb2 as pb

pytestmark = pytest.mark.unit


def test_policy_view_uses_controlplane_camel_case_fields():
    view = views.control_plane(POLICY, SPANS[POLICY.name])
    assert view["metadata"] == {"name": POLICY.name}
    assert view["sourceRef"] == {"type": "K8sNetworkPolicy", "namespace": "demo",
                                 "name": "allow-http", "uid": "0b6c5d2e-uid"}
    assert view["appliedToGroups"] == ["atg-web"]
    assert view["policyTypes"] == ["Ingress", "Egress"]
    assert view["span"] == ["node1", "node2"]
    ingress, egress = view["rules"]
    assert ingress["direction"] == "In" and "to" not in ingress
    assert ingress["from"] == {"addressGroups": ["ag-client"]}
    assert ingress["services"] == [{"protocol": "TCP", "port": 80},
                                   {"protocol": "UDP", "port": 5000, "endPort": 5010}]
    assert egress["direction"] == "Out" and "from" not in egress
    assert egress["to"] == {"ipBlocks": [{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}]}


def test_group_view_lists_members_sorted_with_ports_and_node():
    view = views.control_plane(ATG, SPANS[ATG.name])
    assert [m["pod"]["name"] for m in view["groupMembers"]] == ["web-a", "web-b"]
    web_a = view["groupMembers"][0]
    assert web_a == {"pod": {"namespace": "demo", "name": "web-a"}, "ips": ["10.244.1.2"],
                     "node": "node1",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}


def test_policy_table_has_kubectl_like_columns_and_truncates_long_lists():
    rows = output.table("networkpolicy", [
        views.control_plane(POLICY, SPANS[POLICY.name]),
        views.control_plane(OTHER_POLICY, SPANS[OTHER_POLICY.name])]).splitlines()
    assert rows[0].split() == ["NAME", "REFERENCE", "APPLIED-TO-GROUPS", "RULES",
                               "POLICY-TYPES", "SPAN"]
    assert rows[1].split() == [POLICY.name, "K8sNetworkPolicy:demo/allow-http", "atg-web",
                               "2", "Ingress,Egress", "node1,node2"]
    assert "a1,a2,a3 + 2 more..." in rows[2]
    assert "node1,node2,node3 + 1 more..." in rows[2]
    # Columns line up: every cell of a column starts at the header's offset.
    start = rows[0].index("RULES")
    assert rows[1][start] == "2" and rows[2][start] == "0"


def test_group_tables_count_pods_and_nodes():
    for resource, group in (("appliedtogroup", ATG), ("addressgroup", AG)):
        header, row = output.table(resource, [
            views.control_plane(group, SPANS[group.name])]).splitlines()
        assert header.split() == ["NAME", "POD-COUNT", "NODE-COUNT", "SPAN"]
        assert row.split() == [group.name, str(len(group.members)), "2", "node1,node2"]


def test_json_of_one_object_is_the_object_and_of_a_list_is_a_list():
    view = views.control_plane(AG, SPANS[AG.name])
    assert json.loads(output.render("addressgroup", [view], "json", single=True)) == view
    assert json.loads(output.render("addressgroup", [view], "json")) == [view]


def test_yaml_round_trips_the_views():
    items = [views.control_plane(POLICY, SPANS[POLICY.name])]
    assert yaml.safe_load(output.render("networkpolicy", items, "yaml")) == items


def test_unknown_output_format_is_a_usage_error():
    with pytest.raises(UsageError) as info:
        output.render("addressgroup", [], "wide")
    assert info.value.exit_code == EXIT_USAGE
    assert "table, json, yaml" in info.value.message


def test_pod_interface_table_and_empty_values():
    items = [views.pod_interface(pb.PodInterface(
        pod_namespace="demo", pod_name="web-a", interface_name="web-a-8e2f1c",
        ips=["10.244.1.2", "fd00::2"], mac="aa:bb:cc:00:00:02", ofport=5,
        container_id="0123456789abcdef0123")),
        views.pod_interface(pb.PodInterface(pod_namespace="demo", pod_name="broken",
                                            interface_name="broken-1"))]
    header, first, second = output.table("podinterface", items).splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "INTERFACE-NAME", "IP", "MAC", "OF-PORT",
                              "CONTAINER-ID"]
    assert first.split() == ["demo", "web-a", "web-a-8e2f1c", "10.244.1.2,fd00::2",
                             "aa:bb:cc:00:00:02", "5", "0123456789ab"]
    assert second.split() == ["demo", "broken", "broken-1", "<none>", "<none>", "<none>"]


def test_flows_print_one_line_each_without_header():
    items = [views.flow(pb.Flow(table="Classifier", table_id=3, flow=f"table=Classifier, {i}"))
             for i in range(3)]
    assert output.table("ovsflows", items).splitlines() == [
        "table=Classifier, 0", "table=Classifier, 1", "table=Classifier, 2"]
    assert json.loads(output.render("ovsflows", items, "json"))[1] == {
        "table": "Classifier", "tableID": 3, "flow": "table=Classifier, 1"}
