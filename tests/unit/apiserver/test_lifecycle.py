"""Deletion semantics: graceful pods, finalizers, namespace termination, binding."""

from __future__ import annotations

import pytest
from kubernetes.client import CoreV1Api, V1DeleteOptions
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.unit


def pod(name, node=None):
    spec = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name}, "spec": spec}


def exists(fn, *args) -> bool:
    try:
        fn(*args)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def test_unbound_pod_is_deleted_at_once(core: CoreV1Api):
    core.create_namespaced_pod("default", pod("p"))
    core.delete_namespaced_pod("p", "default")
    assert not exists(core.read_namespaced_pod, "p", "default")


def test_bound_pod_deletion_is_graceful_until_grace_zero(core: CoreV1Api):
    core.create_namespaced_pod("default", pod("p", node="node1"))
    core.delete_namespaced_pod("p", "default")
    p = core.read_namespaced_pod("p", "default")
    assert p.metadata.deletion_timestamp is not None
    assert p.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("p", "default", grace_period_seconds=5)  # shortens
    assert core.read_namespaced_pod("p", "default").metadata.deletion_grace_period_seconds == 5
    # what the kubelet sends once the containers are gone
    core.delete_namespaced_pod("p", "default", body=V1DeleteOptions(grace_period_seconds=0))
    assert not exists(core.read_namespaced_pod, "p", "default")


def test_finished_pod_is_deleted_at_once(core: CoreV1Api):
    core.create_namespaced_pod("default", pod("p", node="node1"))
    core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Succeeded"}})
    core.delete_namespaced_pod("p", "default")
    assert not exists(core.read_namespaced_pod, "p", "default")


def test_finalizers_block_deletion_until_removed(core: CoreV1Api):
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm",
                                                               "finalizers": ["lab/hold"]}})
    core.delete_namespaced_config_map("cm", "default")
    cm = core.read_namespaced_config_map("cm", "default")
    assert cm.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as e:  # no new finalizers once deleting
        core.patch_namespaced_config_map("cm", "default",
                                         {"metadata": {"finalizers": ["lab/hold", "more"]}})
    assert e.value.status == 422
    core.patch_namespaced_config_map("cm", "default", [
        {"op": "remove", "path": "/metadata/finalizers"}])
    assert not exists(core.read_namespaced_config_map, "cm", "default")


def test_status_subresource_and_main_resource_do_not_touch_each_other(core: CoreV1Api):
    core.create_namespaced_pod("default", pod("p"))
    p = core.patch_namespaced_pod_status("p", "default", {
        "status": {"phase": "Running", "podIP": "10.244.1.5"},
        "metadata": {"labels": {"ignored": "yes"}}})
    assert p.status.pod_ip == "10.244.1.5" and not p.metadata.labels
    p = core.patch_namespaced_pod("p", "default", {"status": {"phase": "Failed"},
                                                   "metadata": {"labels": {"a": "b"}}})
    assert p.status.phase == "Running" and p.metadata.labels == {"a": "b"}
    assert p.metadata.generation == 1  # no spec change


def test_binding_sets_node_once(core: CoreV1Api):
    core.create_namespaced_pod("default", pod("p"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node1"}}
    core.create_namespaced_pod_binding("p", "default", binding, _preload_content=False)
    p = core.read_namespaced_pod("p", "default")
    assert p.spec.node_name == "node1"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in p.status.conditions)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod_binding("p", "default", binding, _preload_content=False)
    assert e.value.status == 409


def test_namespace_termination_flow(core: CoreV1Api):
    ns = core.create_namespace({"metadata": {"name": "doomed"}})
    assert ns.spec.finalizers == ["kubernetes"] and ns.status.phase == "Active"
    assert ns.metadata.labels == {"kubernetes.io/metadata.name": "doomed"}
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "cm"}})
    core.delete_namespace("doomed")
    ns = core.read_namespace("doomed")
    assert ns.status.phase == "Terminating" and ns.metadata.deletion_timestamp
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "cm2"}})
    assert e.value.status == 403 and "being terminated" in e.value.body
    # the controller-manager's part: empty the namespace, then finalize
    core.delete_namespaced_config_map("cm", "doomed")
    ns.spec.finalizers = []
    core.replace_namespace_finalize("doomed", ns)
    assert not exists(core.read_namespace, "doomed")


def test_deletecollection_with_label_selector(core: CoreV1Api):
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map("default", {"metadata": {"name": name,
                                                                   "labels": {"app": app}}})
    core.delete_collection_namespaced_config_map("default", label_selector="app=x")
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["c"]


def test_delete_precondition_on_uid(core: CoreV1Api):
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_config_map("cm", "default", body=V1DeleteOptions(
            preconditions={"uid": "not-the-uid"}))
    assert e.value.status == 409
