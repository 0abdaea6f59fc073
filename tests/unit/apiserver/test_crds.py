"""CustomResourceDefinitions: serving, discovery, schema enforcement, status, cleanup."""

from __future__ import annotations

import time

import pytest
from kubernetes.client import ApiextensionsV1Api, CustomObjectsApi
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

pytestmark = pytest.mark.unit

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.lab.antrea.io"},
    "spec": {
        "group": "lab.antrea.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                  "shortNames": ["wg"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "integer", "minimum": 1},
                        "color": {"type": "string", "default": "blue"}}},
                    "status": {"type": "object", "properties": {
                        "ready": {"type": "boolean"}}},
                }}},
        }],
    },
}


def widget(name, **spec):
    return {"apiVersion": "lab.antrea.io/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": spec}


@pytest.fixture
def crd(api):
    ext = ApiextensionsV1Api(api)
    created = ext.create_custom_resource_definition(CRD)
    return ext, created


def test_crd_gets_established_and_served_with_discovery(api, crd):
    _, created = crd
    conds = {c.type: c.status for c in created.status.conditions}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    assert created.status.accepted_names.list_kind == "WidgetList"
    dyn = DynamicClient(api)
    res = dyn.resources.get(api_version="lab.antrea.io/v1", kind="Widget")
    assert res.namespaced and res.name == "widgets" and "wg" in res.short_names
    obj = res.create(namespace="default", body=widget("w1", size=3))
    assert obj.spec.color == "blue"  # schema default applied
    assert [o.metadata.name for o in res.get(namespace="default").items] == ["w1"]


def test_schema_rejects_invalid_and_prunes_unknown_fields(api, crd):
    co = CustomObjectsApi(api)
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object("lab.antrea.io", "v1", "default", "widgets",
                                           widget("bad", size=0))
    assert e.value.status == 422 and "spec.size" in e.value.body
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object("lab.antrea.io", "v1", "default", "widgets",
                                           widget("bad"))
    assert e.value.status == 422 and "spec.size" in e.value.body
    ok = co.create_namespaced_custom_object("lab.antrea.io", "v1", "default", "widgets",
                                            widget("w", size=1, unknown="x"))
    assert "unknown" not in ok["spec"]


def test_custom_resource_status_subresource_and_patches(api, crd):
    co = CustomObjectsApi(api)
    co.create_namespaced_custom_object("lab.antrea.io", "v1", "default", "widgets",
                                       {**widget("w", size=1), "status": {"ready": True}})
    got = co.get_namespaced_custom_object("lab.antrea.io", "v1", "default", "widgets", "w")
    assert "status" not in got  # dropped on create: status is a subresource
    co.patch_namespaced_custom_object_status("lab.antrea.io", "v1", "default", "widgets", "w",
                                             {"status": {"ready": True}})
    got = co.patch_namespaced_custom_object("lab.antrea.io", "v1", "default", "widgets", "w",
                                            {"spec": {"size": 5}})
    assert got["spec"]["size"] == 5 and got["status"] == {"ready": True}
    assert got["metadata"]["generation"] == 2


def test_strategic_merge_patch_on_custom_resource_is_415(apiserver, crd, raw):
    raw("POST", "/apis/lab.antrea.io/v1/namespaces/default/widgets", widget("w", size=1))
    r = raw("PATCH", "/apis/lab.antrea.io/v1/namespaces/default/widgets/w",
            {"spec": {"size": 2}},
            headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status == 415


def test_deleting_crd_deletes_objects_and_stops_serving(api, crd, raw):
    ext, _ = crd
    co = CustomObjectsApi(api)
    co.create_namespaced_custom_object("lab.antrea.io", "v1", "default", "widgets",
                                       widget("w", size=1))
    ext.delete_custom_resource_definition("widgets.lab.antrea.io")
    time.sleep(0.05)
    r = raw("GET", "/apis/lab.antrea.io/v1/namespaces/default/widgets")
    assert r.status == 404
    ext.create_custom_resource_definition(CRD)
    items = co.list_namespaced_custom_object("lab.antrea.io", "v1", "default", "widgets")
    assert items["items"] == []


def test_invalid_crd_is_rejected(api):
    ext = ApiextensionsV1Api(api)
    bad = {**CRD, "metadata": {"name": "wrong.name.io"}}
    with pytest.raises(ApiException) as e:
        ext.create_custom_resource_definition(bad)
    assert e.value.status == 422 and "metadata.name" in e.value.body


def test_deleting_crd_ends_its_watches(apiserver, api, crd):
    import json
    import threading

    from apiserver_harness import raw_request

    ext, _ = crd
    result = {}

    def watch():
        result["r"] = raw_request(apiserver, "GET", "/apis/lab.antrea.io/v1/namespaces/"
                                  "default/widgets?watch=1&timeoutSeconds=20", timeout=30)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.3)
    ext.delete_custom_resource_definition("widgets.lab.antrea.io")
    t.join(10)
    assert not t.is_alive()
    events = [json.loads(x) for x in result["r"].body.splitlines() if x.strip()]
    assert events[-1]["type"] == "ERROR" and events[-1]["object"]["code"] == 410


def test_crds_and_their_objects_survive_restart(server_factory, tmp_path):
    from apiserver_harness import client_for

    data = tmp_path / "crdstate"
    srv = server_factory(data_dir=data)
    api = client_for(srv)
    ApiextensionsV1Api(api).create_custom_resource_definition(CRD)
    CustomObjectsApi(api).create_namespaced_custom_object(
        "lab.antrea.io", "v1", "default", "widgets", widget("w", size=2))
    srv.stop()
    srv2 = server_factory(data_dir=data)
    co = CustomObjectsApi(client_for(srv2))
    got = co.get_namespaced_custom_object("lab.antrea.io", "v1", "default", "widgets", "w")
    assert got["spec"] == {"size": 2, "color": "blue"}
    with pytest.raises(ApiException) as e:  # the schema is enforced again after restart
        co.create_namespaced_custom_object("lab.antrea.io", "v1", "default", "widgets",
                                           widget("bad", size=0))
    assert e.value.status == 422
