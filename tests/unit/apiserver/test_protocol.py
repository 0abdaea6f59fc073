"""Protocol details: auth, discovery, version, content types, Table output, tokens,
persistence across restarts."""

from __future__ import annotations

import json

import pytest
from apiserver_harness import client_for
from kubernetes.client import AuthenticationV1Api, CoreV1Api
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.unit

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_unauthenticated_requests_get_401_except_version_and_health(raw):
    r = raw("GET", "/api/v1/pods", token=None)
    assert r.status == 401 and r.json()["kind"] == "Status" and r.json()["code"] == 401
    assert raw("GET", "/api/v1/pods", token="wrong").status == 401
    v = raw("GET", "/version", token=None)
    assert v.status == 200 and v.json()["gitVersion"].endswith("-antrea-lab")
    for path in ("/healthz", "/readyz", "/livez"):
        assert raw("GET", path, token=None).body == b"ok"


def test_discovery_documents(raw):
    core = raw("GET", "/api/v1").json()
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert pods["namespaced"] and "watch" in pods["verbs"] and pods["shortNames"] == ["po"]
    names = {r["name"] for r in core["resources"]}
    assert {"pods/status", "pods/binding", "serviceaccounts/token",
            "namespaces/finalize"} <= names
    groups = {g["name"] for g in raw("GET", "/apis").json()["groups"]}
    assert {"networking.k8s.io", "apiextensions.k8s.io", "discovery.k8s.io"} <= groups
    assert raw("GET", "/apis/networking.k8s.io").json()["preferredVersion"]["version"] == "v1"
    assert raw("GET", "/api").json()["versions"] == ["v1"]
    assert raw("GET", "/apis/nope.io/v1").status == 404


def test_protobuf_answers_are_refused_and_bodies_are_decoded_or_rejected(raw):
    r = raw("GET", "/api/v1/pods", headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert r.status == 406
    r = raw("POST", "/api/v1/namespaces/default/configmaps", b"\x00\x01",
            headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert r.status == 400 and "magic" in r.json()["message"]
    r = raw("GET", "/api/v1/pods", headers={
        "Accept": "application/vnd.kubernetes.protobuf, application/json"})
    assert r.status == 200


def test_table_output_for_list_get_and_watch(core: CoreV1Api, raw):
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}], "nodeName": "node1"}})
    t = raw("GET", "/api/v1/namespaces/default/pods", headers={"Accept": TABLE}).json()
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    cols = [c["name"] for c in t["columnDefinitions"]]
    assert cols[:3] == ["Name", "Ready", "Status"] and "Node" in cols
    assert t["rows"][0]["cells"][0] == "p"
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert t["metadata"]["resourceVersion"]
    one = raw("GET", "/api/v1/namespaces/default/pods/p?includeObject=None",
              headers={"Accept": TABLE}).json()
    assert one["rows"][0]["cells"][0] == "p" and one["rows"][0].get("object") is None
    w = raw("GET", "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=0.3",
            headers={"Accept": TABLE})
    ev = json.loads(w.body.splitlines()[0])
    assert ev["type"] == "ADDED" and ev["object"]["kind"] == "Table"


def test_token_request_and_token_review(core: CoreV1Api, api, raw):
    sa = core.create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
    tr = core.create_namespaced_service_account_token("robot", "default", {
        "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"],
                 "expirationSeconds": 3600}})
    token = tr.status.token
    assert token and tr.status.expiration_timestamp
    review = AuthenticationV1Api(api).create_token_review({"spec": {"token": token}})
    assert review.status.authenticated
    assert review.status.user.username == "system:serviceaccount:default:robot"
    assert review.status.user.uid == sa.metadata.uid
    # the token also authenticates API requests
    assert raw("GET", "/api/v1/namespaces/default/pods", token=token).status == 200
    core.delete_namespaced_service_account("robot", "default")
    assert raw("GET", "/api/v1/namespaces/default/pods", token=token).status == 401


def test_state_survives_restart_and_resource_version_continues(server_factory, tmp_path):
    data = tmp_path / "persist"
    srv = server_factory(data_dir=data)
    core = CoreV1Api(client_for(srv))
    core.create_namespace({"metadata": {"name": "keep"}})
    svc = core.create_namespaced_service("keep", {"metadata": {"name": "s"},
                                                  "spec": {"ports": [{"port": 80}]}})
    cm = core.create_namespaced_config_map("keep", {"metadata": {"name": "cm"},
                                                    "data": {"k": "v"}})
    core.create_namespaced_config_map("keep", {"metadata": {"name": "gone"}})
    core.delete_namespaced_config_map("gone", "keep")
    last_rv = int(core.list_namespaced_config_map("keep").metadata.resource_version)
    srv.stop()

    srv2 = server_factory(data_dir=data)
    core2 = CoreV1Api(client_for(srv2))
    got = core2.read_namespaced_config_map("cm", "keep")
    assert got.data == {"k": "v"} and got.metadata.uid == cm.metadata.uid
    assert [c.metadata.name for c in core2.list_namespaced_config_map("keep").items] == ["cm"]
    assert core2.read_namespaced_service("s", "keep").spec.cluster_ip == svc.spec.cluster_ip
    new = core2.create_namespaced_config_map("keep", {"metadata": {"name": "new"}})
    assert int(new.metadata.resource_version) > last_rv
    # the allocator remembers the stored Service's IP
    with pytest.raises(ApiException) as e:
        core2.create_namespaced_service("keep", {"metadata": {"name": "dup"}, "spec": {
            "clusterIP": svc.spec.cluster_ip, "ports": [{"port": 80}]}})
    assert e.value.status == 422


def test_partial_object_metadata_for_metadata_clients(core: CoreV1Api, raw):
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm",
                                                               "labels": {"a": "b"}},
                                                  "data": {"secret": "x"}})
    accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    body = raw("GET", "/api/v1/namespaces/default/configmaps",
               headers={"Accept": accept}).json()
    assert body["kind"] == "PartialObjectMetadataList"
    (item,) = body["items"]
    assert item["kind"] == "PartialObjectMetadata" and item["apiVersion"] == "meta.k8s.io/v1"
    assert item["metadata"]["name"] == "cm" and item["metadata"]["labels"] == {"a": "b"}
    assert "data" not in body["items"][0]
    one = raw("GET", "/api/v1/namespaces/default/configmaps/cm", headers={
        "Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"}).json()
    assert one["kind"] == "PartialObjectMetadata" and one["metadata"]["labels"] == {"a": "b"}
