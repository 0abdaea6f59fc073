"""The PATCH formats, on plain dicts."""

from __future__ import annotations

import pytest

from antrea_lab.apiserver.errors import APIError
from antrea_lab.apiserver.patching import json_patch, merge_patch, strategic_merge_patch

pytestmark = pytest.mark.unit

POD = {
    "kind": "Pod",
    "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {"containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}],
         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
        {"name": "side", "image": "side:1"},
    ], "tolerations": [{"key": "k1"}]},
}


def test_merge_patch_replaces_lists_and_deletes_null_keys():
    out = merge_patch(POD, {"metadata": {"labels": {"a": None, "c": "3"}},
                            "spec": {"containers": [{"name": "only"}]}})
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert out["spec"]["containers"] == [{"name": "only"}]
    assert POD["metadata"]["labels"] == {"a": "1", "b": "2"}  # input untouched


def test_json_patch_add_remove_replace_move_copy_test():
    ops = [
        {"op": "add", "path": "/metadata/labels/c", "value": "3"},
        {"op": "remove", "path": "/metadata/labels/a"},
        {"op": "replace", "path": "/spec/containers/1/image", "value": "side:2"},
        {"op": "copy", "from": "/metadata/labels/b", "path": "/metadata/labels/d"},
        {"op": "move", "from": "/metadata/labels/c", "path": "/metadata/labels/e"},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "y"},
        {"op": "test", "path": "/spec/containers/0/name", "value": "app"},
    ]
    out = json_patch(POD, ops)
    assert out["metadata"]["labels"] == {"b": "2", "d": "2", "e": "3"}
    assert out["spec"]["containers"][1]["image"] == "side:2"
    assert out["metadata"]["finalizers"] == ["x", "y"]


def test_json_patch_failed_test_op_is_rejected():
    with pytest.raises(APIError) as e:
        json_patch(POD, [{"op": "test", "path": "/metadata/name", "value": "other"}])
    assert e.value.code == 422


def test_strategic_merge_merges_containers_by_name_and_env_by_name():
    out = strategic_merge_patch(POD, {"spec": {"containers": [
        {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]}})
    app, side = out["spec"]["containers"]
    assert app["image"] == "app:2"
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert app["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert side == {"name": "side", "image": "side:1"}


def test_strategic_merge_directives():
    out = strategic_merge_patch(POD, {
        "metadata": {"finalizers": ["z"], "$deleteFromPrimitiveList/finalizers": ["x"]},
        "spec": {"containers": [{"name": "side", "$patch": "delete"}],
                 "tolerations": [{"key": "k2"}],
                 "$setElementOrder/containers": [{"name": "app"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]
    assert out["metadata"]["finalizers"] == ["z"]
    assert out["spec"]["tolerations"] == [{"key": "k2"}]  # no merge key: replaced


def test_strategic_merge_service_ports_by_port_and_replace_directive():
    svc = {"kind": "Service", "spec": {"ports": [{"port": 80, "name": "http"},
                                                 {"port": 443, "name": "https"}],
                                       "selector": {"a": "1", "b": "2"}}}
    out = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 80, "targetPort": 8080}],
                                               "selector": {"$patch": "replace", "c": "3"}}})
    assert out["spec"]["ports"][0] == {"port": 80, "name": "http", "targetPort": 8080}
    assert len(out["spec"]["ports"]) == 2
    assert out["spec"]["selector"] == {"c": "3"}
