"""Namespace controller pieces that need no server: discovery filtering, finalize body."""

from __future__ import annotations

import pytest

from antrea_lab.controllers.namespaces import (
    deletable_resources,
    finalized,
    root_ca_configmap,
)

pytestmark = pytest.mark.unit

CORE = {"groupVersion": "v1", "resources": [
    {"name": "pods", "namespaced": True, "kind": "Pod",
     "verbs": ["create", "delete", "deletecollection", "get", "list", "watch"]},
    {"name": "pods/status", "namespaced": True, "kind": "Pod", "verbs": ["get", "patch"]},
    {"name": "nodes", "namespaced": False, "kind": "Node",
     "verbs": ["delete", "deletecollection", "list"]},
    {"name": "bindings", "namespaced": True, "kind": "Binding", "verbs": ["create"]},
]}
CRD_GROUP = {"groupVersion": "crd.antrea.io/v1beta1", "resources": [
    {"name": "networkpolicies", "namespaced": True, "kind": "NetworkPolicy",
     "verbs": ["delete", "get", "list"]},
    {"name": "clustergroups", "namespaced": False, "kind": "ClusterGroup",
     "verbs": ["delete", "list"]},
]}


def test_discovery_keeps_namespaced_deletable_top_level_resources() -> None:
    found = {(r.group, r.version, r.plural): verbs
             for r, verbs in deletable_resources(CORE, [CRD_GROUP])}
    assert set(found) == {("", "v1", "pods"), ("crd.antrea.io", "v1beta1", "networkpolicies")}
    assert "deletecollection" not in found[("crd.antrea.io", "v1beta1", "networkpolicies")]


def test_discovered_custom_resource_paths() -> None:
    res = {r.plural: r for r, _ in deletable_resources(CORE, [CRD_GROUP])}
    assert res["networkpolicies"].path("ns1") == \
        "/apis/crd.antrea.io/v1beta1/namespaces/ns1/networkpolicies"
    assert res["pods"].path("ns1", "p", "binding") == "/api/v1/namespaces/ns1/pods/p/binding"


def test_finalized_drops_only_the_kubernetes_finalizer() -> None:
    ns = {"metadata": {"name": "x", "resourceVersion": "4"},
          "spec": {"finalizers": ["kubernetes", "example.com/keep"]}}
    out = finalized(ns)
    assert out["spec"]["finalizers"] == ["example.com/keep"]
    assert out["metadata"]["resourceVersion"] == "4"
    assert ns["spec"]["finalizers"] == ["kubernetes", "example.com/keep"]  # input untouched


def test_root_ca_configmap_carries_the_ca() -> None:
    cm = root_ca_configmap("ns1", "-----BEGIN CERTIFICATE-----\n")
    assert cm["metadata"]["name"] == "kube-root-ca.crt"
    assert cm["metadata"]["namespace"] == "ns1"
    assert cm["data"] == {"ca.crt": "-----BEGIN CERTIFICATE-----\n"}
