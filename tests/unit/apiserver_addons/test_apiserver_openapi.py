"""OpenAPI v3 documents: what kubectl needs to validate on the server."""

from __future__ import annotations

from typing import Any

import pytest

from antrea_lab.apiserver.openapi import (
    openapi_v3_document,
    openapi_v3_paths,
    schema_name,
)
from antrea_lab.apiserver.registry import BUILTIN, ResourceInfo

pytestmark = pytest.mark.unit

CRONTAB = ResourceInfo("stable.example.com", "v1", "crontabs", "CronTab", True, builtin=False,
                       subresources=("status",),
                       schema={"type": "object", "properties": {
                           "spec": {"type": "object",
                                    "properties": {"replicas": {"type": "integer"}}}}})
INFOS = [*BUILTIN, CRONTAB]


def _patch_supports_field_validation(doc: dict[str, Any], group: str, version: str,
                                     kind: str) -> bool:
    # The check kubectl makes: the first PATCH for the GVK lists fieldValidation inline.
    for path in doc["paths"].values():
        op = path.get("patch")
        if op is None or op["x-kubernetes-group-version-kind"] != {
                "group": group, "version": version, "kind": kind}:
            continue
        return any(p["name"] == "fieldValidation" for p in op["parameters"])
    return False


def test_root_lists_every_group_version_with_stable_hash() -> None:
    root = openapi_v3_paths(INFOS)["paths"]
    assert {"api/v1", "apis/networking.k8s.io/v1", "apis/apps/v1",
            "apis/stable.example.com/v1"} <= set(root)
    url = root["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    assert openapi_v3_paths(INFOS)["paths"]["api/v1"]["serverRelativeURL"] == url
    changed = ResourceInfo("stable.example.com", "v1", "crontabs", "CronTab", True,
                           builtin=False, schema={"type": "object"})
    after = openapi_v3_paths([*BUILTIN, changed])["paths"]
    assert after["apis/stable.example.com/v1"] != root["apis/stable.example.com/v1"]
    assert after["api/v1"] == root["api/v1"]


@pytest.mark.parametrize(("gv", "group", "kind"), [
    ("api/v1", "", "Pod"), ("api/v1", "", "Service"),
    ("apis/networking.k8s.io/v1", "networking.k8s.io", "NetworkPolicy"),
    ("apis/stable.example.com/v1", "stable.example.com", "CronTab"),
])
def test_patch_operation_advertises_field_validation(gv: str, group: str, kind: str) -> None:
    doc = openapi_v3_document(gv, INFOS)
    assert doc["openapi"].startswith("3.")
    assert _patch_supports_field_validation(doc, group, "v1", kind)


def test_pod_paths_and_operations() -> None:
    doc = openapi_v3_document("api/v1", INFOS)
    paths = doc["paths"]
    coll = paths["/api/v1/namespaces/{namespace}/pods"]
    item = paths["/api/v1/namespaces/{namespace}/pods/{name}"]
    assert coll["get"]["x-kubernetes-action"] == "list"
    assert coll["post"]["x-kubernetes-action"] == "post"
    assert coll["delete"]["x-kubernetes-action"] == "deletecollection"
    assert {m for m in item if m != "parameters"} == {"get", "put", "patch", "delete"}
    assert any(p["name"] == "fieldValidation" for p in coll["post"]["parameters"])
    assert any(p["name"] == "fieldValidation" for p in item["put"]["parameters"])
    assert "/api/v1/pods" in paths
    assert "/api/v1/namespaces/{namespace}/pods/{name}/status" in paths
    assert "/api/v1/nodes/{name}" in paths  # cluster-scoped: no namespace segment
    assert not any("networkpolicies" in p for p in paths)
    # kubectl computes apply patches from the OpenAPI schema when strategic merge patch
    # is advertised; not advertising it makes it use its own exact built-in types.
    assert set(item["patch"]["requestBody"]["content"]) == {
        "application/merge-patch+json", "application/json-patch+json",
        "application/apply-patch+yaml"}


def test_every_schema_reference_resolves() -> None:
    for gv in openapi_v3_paths(INFOS)["paths"]:
        doc = openapi_v3_document(gv, INFOS)
        schemas = doc["components"]["schemas"]
        refs: list[str] = []

        def walk(node: Any, refs: list[str] = refs) -> None:
            if isinstance(node, dict):
                if "$ref" in node:
                    refs.append(node["$ref"])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(doc)
        missing = {r for r in refs if r.removeprefix("#/components/schemas/") not in schemas}
        assert not missing, (gv, missing)


def test_schemas_carry_gvk_and_crd_schema() -> None:
    core = openapi_v3_document("api/v1", INFOS)["components"]["schemas"]
    pod = core["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1",
                                                       "kind": "Pod"}]
    assert core["io.k8s.api.core.v1.PodList"]["x-kubernetes-group-version-kind"][0]["kind"] == \
        "PodList"
    custom = openapi_v3_document("apis/stable.example.com/v1", INFOS)["components"]["schemas"]
    ct = custom["com.example.stable.v1.CronTab"]
    assert ct["properties"]["spec"]["properties"]["replicas"] == {"type": "integer"}
    assert ct["properties"]["kind"]["enum"] == ["CronTab"]
    assert "metadata" in ct["properties"]
    assert "metadata" not in CRONTAB.schema["properties"]  # type: ignore[index]


def test_create_only_kind_has_only_post() -> None:
    doc = openapi_v3_document("apis/authentication.k8s.io/v1", INFOS)
    assert list(doc["paths"]) == ["/apis/authentication.k8s.io/v1/tokenreviews"]
    assert set(doc["paths"]["/apis/authentication.k8s.io/v1/tokenreviews"]) == {
        "parameters", "post"}


def test_schema_names() -> None:
    assert schema_name("", "v1", "Pod") == "io.k8s.api.core.v1.Pod"
    assert schema_name("networking.k8s.io", "v1", "NetworkPolicy") == \
        "io.k8s.api.networking.v1.NetworkPolicy"
    assert schema_name("crd.antrea.io", "v1beta1", "ClusterGroup") == \
        "io.antrea.crd.v1beta1.ClusterGroup"
