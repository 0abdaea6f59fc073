"""CRUD, optimistic concurrency, patches, selectors and pagination via the official client."""

from __future__ import annotations

import json

import pytest
from kubernetes.client import CoreV1Api, NetworkingV1Api
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.unit


def pod(name, labels=None, node=None, image="busybox:1.36"):
    spec = {"containers": [{"name": "c", "image": image}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def test_create_get_list_and_server_fields(core: CoreV1Api):
    created = core.create_namespaced_pod("default", pod("p1", {"app": "web"}))
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.metadata.generation == 1
    assert created.status.phase == "Pending" and created.status.qos_class == "BestEffort"
    assert created.spec.restart_policy == "Always"
    assert created.spec.scheduler_name == "default-scheduler"
    got = core.read_namespaced_pod("p1", "default")
    assert got.metadata.resource_version == created.metadata.resource_version
    listed = core.list_namespaced_pod("default")
    assert [p.metadata.name for p in listed.items] == ["p1"]
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("default", pod("p1"))
    assert e.value.status == 409


def test_generate_name_and_validation_errors_name_the_field(core: CoreV1Api):
    p = pod("")
    p["metadata"] = {"generateName": "gen-"}
    created = core.create_namespaced_pod("default", p)
    assert created.metadata.name.startswith("gen-") and len(created.metadata.name) == 9
    bad = pod("Bad_Name")
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("default", bad)
    assert e.value.status == 422 and "metadata.name" in e.value.body
    nocontainers = pod("empty")
    nocontainers["spec"] = {"containers": []}
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("default", nocontainers)
    assert e.value.status == 422 and "spec.containers" in e.value.body


def test_namespace_mismatch_is_400_and_missing_namespace_404(core: CoreV1Api):
    p = pod("p")
    p["metadata"]["namespace"] = "other"
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("default", p)
    assert e.value.status == 400
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("nope", pod("p"))
    assert e.value.status == 404


def test_update_with_stale_resource_version_conflicts(core: CoreV1Api):
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"},
                                                       "data": {"k": "1"}})
    cm.data = {"k": "2"}
    updated = core.replace_namespaced_config_map("cm", "default", cm)
    assert updated.data == {"k": "2"}
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    cm.data = {"k": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("cm", "default", cm)
    assert e.value.status == 409 and "the object has been modified" in e.value.body


def test_noop_update_keeps_resource_version(core: CoreV1Api):
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"},
                                                       "data": {"k": "1"}})
    same = core.patch_namespaced_config_map("cm", "default", {"data": {"k": "1"}})
    assert same.metadata.resource_version == cm.metadata.resource_version


def test_merge_json_and_strategic_patches(core: CoreV1Api, api):
    core.create_namespaced_pod("default", pod("p", {"a": "1"}))
    # dict bodies on built-in kinds go out as strategic merge patches
    p = core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"b": "2"}},
                                                   "spec": {"containers": [
                                                       {"name": "c", "image": "busybox:2"}]}})
    assert p.metadata.labels == {"a": "1", "b": "2"}
    assert p.spec.containers[0].image == "busybox:2"
    assert p.spec.containers[0].termination_message_path == "/dev/termination-log"
    p = core.patch_namespaced_pod("p", "default", [
        {"op": "replace", "path": "/metadata/labels/a", "value": "x"}])
    assert p.metadata.labels["a"] == "x"
    api.set_default_header("Content-Type", "application/merge-patch+json")
    try:
        p = core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"b": None}}})
    finally:
        api.default_headers.pop("Content-Type", None)
    assert p.metadata.labels == {"a": "x"}


def test_pod_spec_is_immutable_except_image(core: CoreV1Api):
    core.create_namespaced_pod("default", pod("p"))
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod("p", "default", {"spec": {"restartPolicy": "Never"}})
    assert e.value.status == 422
    assert "pod updates may not change fields other than" in e.value.body
    assert '"field":"spec"' in e.value.body.replace(" ", "")


def test_label_and_field_selectors(core: CoreV1Api):
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_pod("default", pod("a", {"app": "web", "tier": "front"}, "n1"))
    core.create_namespaced_pod("default", pod("b", {"app": "web"}, "n2"))
    core.create_namespaced_pod("other", pod("c", {"app": "db"}, "n1"))

    def names(**kw):
        return sorted(p.metadata.name for p in core.list_pod_for_all_namespaces(**kw).items)

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app!=web") == ["c"]
    assert names(label_selector="app in (db, x)") == ["c"]
    assert names(label_selector="tier") == ["a"]
    assert names(label_selector="!tier") == ["b", "c"]
    assert names(field_selector="spec.nodeName=n1") == ["a", "c"]
    assert names(field_selector="metadata.namespace=other") == ["c"]
    assert names(field_selector="metadata.name=b,status.phase=Pending") == ["b"]
    with pytest.raises(ApiException) as e:
        core.list_pod_for_all_namespaces(field_selector="spec.bogus=1")
    assert e.value.status == 400 and "spec.bogus" in e.value.body


def test_pagination_with_limit_and_continue(core: CoreV1Api):
    for i in range(7):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"cm{i}"}})
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map("default", limit=3, _continue=token)
        pages += 1
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(seen)
    assert pages == 3 and seen == [f"cm{i}" for i in range(7)]


def test_dry_run_validates_but_does_not_store(core: CoreV1Api):
    out = core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}},
                                            dry_run="All")
    assert out.metadata.name == "dry"
    assert core.list_namespaced_config_map("default").items == []


def test_service_allocation_defaults_and_release(core: CoreV1Api):
    svc = core.create_namespaced_service("default", {
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"port": 80}]}})
    ip = svc.spec.cluster_ip
    assert ip.startswith("10.96.") and svc.spec.cluster_ips == [ip]
    port = svc.spec.ports[0]
    assert port.protocol == "TCP" and port.target_port == 80
    assert 30000 <= port.node_port <= 32767
    assert svc.spec.session_affinity == "None" and svc.spec.internal_traffic_policy == "Cluster"
    with pytest.raises(ApiException) as e:  # an allocated IP cannot be requested again
        core.create_namespaced_service("default", {
            "metadata": {"name": "dup"}, "spec": {"clusterIP": ip, "ports": [{"port": 1}]}})
    assert e.value.status == 422 and "spec.clusterIPs[0]" in e.value.body
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_service("web", "default", {"spec": {"clusterIP": "10.96.9.9"}})
    assert e.value.status == 422
    core.delete_namespaced_service("web", "default")
    again = core.create_namespaced_service("default", {
        "metadata": {"name": "again"}, "spec": {"clusterIP": ip, "ports": [{"port": 1}]}})
    assert again.spec.cluster_ip == ip
    headless = core.create_namespaced_service("default", {
        "metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}})
    assert headless.spec.cluster_ip == "None"


def test_local_load_balancer_gets_a_health_check_node_port_released_with_local(
        core: CoreV1Api):
    svc = core.create_namespaced_service("default", {
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                 "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    check = svc.spec.health_check_node_port
    assert 30000 <= check <= 32767 and check != svc.spec.ports[0].node_port
    # A replace without the field keeps it; leaving Local releases it.
    svc.spec.health_check_node_port = None
    kept = core.replace_namespaced_service("lb", "default", svc)
    assert kept.spec.health_check_node_port == check
    cluster = core.patch_namespaced_service("lb", "default",
                                            {"spec": {"externalTrafficPolicy": "Cluster"}})
    assert cluster.spec.health_check_node_port is None
    reuse = core.create_namespaced_service("default", {
        "metadata": {"name": "np"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": check}]}})
    assert reuse.spec.ports[0].node_port == check
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service("default", {
            "metadata": {"name": "bad-check"},
            "spec": {"type": "NodePort", "healthCheckNodePort": 31999,
                     "ports": [{"port": 80}]}})
    assert e.value.status == 422 and "spec.healthCheckNodePort" in e.value.body


def test_service_ports_validation_names_the_field(core: CoreV1Api):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service("default", {
            "metadata": {"name": "bad"}, "spec": {"ports": [{"port": 70000}]}})
    assert e.value.status == 422 and "spec.ports[0].port" in e.value.body


def test_networkpolicy_round_trip(api):
    net = NetworkingV1Api(api)
    np = net.create_namespaced_network_policy("default", {
        "metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    assert np.spec.policy_types == ["Ingress"]
    assert [n.metadata.name for n in net.list_network_policy_for_all_namespaces().items] == \
        ["deny"]


@pytest.mark.parametrize("spec,field", [
    ({"podSelector": {}, "policyTypes": ["Sideways"]}, "spec.policyTypes[0]"),
    ({"podSelector": {}, "ingress": [{"from": [{}]}]}, "spec.ingress[0].from[0]"),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                                        "except": ["11.0.0.0/16"]}}]}]},
     "spec.egress[0].to[0].ipBlock.except[0]"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]},
     "spec.ingress[0].ports[0].port"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 70}]}]},
     "spec.ingress[0].ports[0].endPort"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
     "spec.podSelector.matchExpressions[0].values"),
])
def test_networkpolicy_validation_names_the_field(api, spec, field):
    net = NetworkingV1Api(api)
    with pytest.raises(ApiException) as e:
        net.create_namespaced_network_policy("default", {"metadata": {"name": "bad"},
                                                         "spec": spec})
    assert e.value.status == 422
    causes = json.loads(e.value.body)["details"]["causes"]
    assert [c["field"] for c in causes] == [field]
