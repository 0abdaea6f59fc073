"""CRD validation and structural-schema defaulting, pruning and validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from antrea_lab.apiserver.schema import (
    default_crd,
    printer_columns,
    prune_default_validate,
    unknown_fields,
    unsupported_features,
    validate_crd,
    version_schema,
)

pytestmark = pytest.mark.unit

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string",
                             "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                "image": {"type": "string", "maxLength": 10},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "ip": {"type": "string", "format": "ipv4"},
                "port": {"x-kubernetes-int-or-string": True},
                "ratio": {"type": "number", "exclusiveMaximum": True, "maximum": 1},
                "note": {"type": "string", "nullable": True},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2,
                         "x-kubernetes-list-type": "set"},
                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "required": ["port"],
                                    "properties": {"name": {"type": "string"},
                                                   "port": {"type": "integer",
                                                            "format": "int32"},
                                                   "protocol": {"type": "string",
                                                                "default": "TCP"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "choice": {"type": "object", "properties": {"a": {"type": "string"},
                                                            "b": {"type": "string"}},
                           "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}


def _obj(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "x", "namespace": "default"},
            "spec": {"cronSpec": "* * * * */5", **spec}}


def _messages(spec: dict[str, Any]) -> list[str]:
    _, errs = prune_default_validate(SCHEMA, _obj(**spec))
    return [f"{e.path}: {e.message}" for e in errs]


def test_valid_object_gets_defaults_and_unknown_fields_pruned() -> None:
    obj = _obj(ports=[{"name": "http", "port": 80}], junk=1, extra={"any": {"thing": 1}},
               labels={"k": "v"})
    obj["topLevelJunk"] = True
    obj["metadata"]["labels"] = {"keep": "me"}
    before = copy.deepcopy(obj)
    out, errs = prune_default_validate(SCHEMA, obj)
    assert errs == []
    assert obj == before  # input untouched
    assert out["spec"]["replicas"] == 1
    assert out["spec"]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert "junk" not in out["spec"] and "topLevelJunk" not in out
    assert out["spec"]["extra"] == {"any": {"thing": 1}}
    assert out["spec"]["labels"] == {"k": "v"}
    assert out["metadata"] == {"name": "x", "namespace": "default", "labels": {"keep": "me"}}
    assert (out["apiVersion"], out["kind"]) == ("stable.example.com/v1", "CronTab")


def test_type_error_is_worded_like_kube() -> None:
    assert _messages({"replicas": "string"}) == [
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type '
        'integer: "string"']


def test_required_enum_and_bounds() -> None:
    _, errs = prune_default_validate(SCHEMA, {"apiVersion": "v", "kind": "K",
                                              "metadata": {}, "spec": {"mode": "c",
                                                                       "replicas": 11}})
    got = {f"{e.path}: {e.message}" for e in errs}
    assert got == {
        "spec.cronSpec: Required value",
        'spec.mode: Unsupported value: "c": supported values: "a", "b"',
        "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or "
        "equal to 10",
    }
    assert {e.reason for e in errs} == {"FieldValueRequired", "FieldValueNotSupported",
                                        "FieldValueInvalid"}


def test_nested_array_paths_use_indexes() -> None:
    msgs = _messages({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": "x"},
                                {"name": "c"}]})
    assert 'spec.ports[1].port: Invalid value: "string": spec.ports[1].port in body must ' \
           'be of type integer: "string"' in msgs
    assert "spec.ports[2].port: Required value" in msgs


def test_string_constraints_and_formats() -> None:
    msgs = _messages({"cronSpec": "bad", "image": "x" * 11, "ip": "300.1.1.1"})
    assert any(m.startswith('spec.cronSpec: Invalid value: "bad": spec.cronSpec in body '
                            "should match '") for m in msgs)
    assert "spec.image: Too long: may not be more than 10 bytes" in msgs
    assert 'spec.ip: Invalid value: "300.1.1.1": spec.ip in body must be of type ipv4: ' \
           '"300.1.1.1"' in msgs


def test_int_or_string_nullable_and_exclusive_maximum() -> None:
    assert _messages({"port": 80, "note": None, "ratio": 0.5}) == []
    assert _messages({"port": "http"}) == []
    msgs = _messages({"port": True, "ratio": 1})
    assert 'spec.port: Invalid value: "boolean": spec.port in body must be of type ' \
           'integer,string: "boolean"' in msgs
    assert "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1" in msgs


def test_list_set_and_map_uniqueness_and_max_items() -> None:
    msgs = _messages({"tags": ["a", "a", "b"],
                      "ports": [{"name": "x", "port": 1}, {"name": "x", "port": 2}]})
    assert 'spec.tags[1]: Duplicate value: "a"' in msgs
    assert "spec.tags: Too many: 3: must have at most 2 items" in msgs
    assert 'spec.ports[1]: Duplicate value: {"name":"x"}' in msgs


def test_one_of_and_additional_properties_types() -> None:
    assert _messages({"choice": {"a": "1"}}) == []
    both = _messages({"choice": {"a": "1", "b": "2"}})
    assert len(both) == 1 and "must validate one and only one schema (oneOf)" in both[0]
    assert _messages({"labels": {"k": 1}}) == [
        'spec.labels.k: Invalid value: "integer": spec.labels.k in body must be of type '
        'string: "integer"']


def test_non_nullable_null_is_pruned_or_defaulted() -> None:
    out, errs = prune_default_validate(SCHEMA, _obj(replicas=None, image=None))
    assert errs == []
    assert out["spec"]["replicas"] == 1 and "image" not in out["spec"]


def test_int32_bounds() -> None:
    msgs = _messages({"ports": [{"name": "a", "port": 2**31}]})
    assert msgs == [f"spec.ports[0].port: Invalid value: {2**31}: spec.ports[0].port in body "
                    f"must be of type int32: {2**31}"]


CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.stable.example.com"},
    "spec": {
        "group": "stable.example.com",
        "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                  "shortNames": ["ct"]},
        "versions": [
            {"name": "v1", "served": True, "storage": True,
             "schema": {"openAPIV3Schema": SCHEMA},
             "additionalPrinterColumns": [
                 {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}]},
            {"name": "v1beta1", "served": True, "storage": False,
             "schema": {"openAPIV3Schema": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                            "x-kubernetes-validations": [
                                                {"rule": "self.x > 1"}]}}},
        ],
    },
}


def test_valid_crd_has_no_errors_and_exposes_versions() -> None:
    assert validate_crd(CRD) == []
    assert version_schema(CRD, "v1") is SCHEMA
    assert version_schema(CRD, "v2") is None
    assert printer_columns(CRD, "v1")[0]["name"] == "Spec"
    assert printer_columns(CRD, "v1beta1") == []
    d = default_crd(CRD)
    assert d["spec"]["names"]["listKind"] == "CronTabList"
    assert "listKind" not in CRD["spec"]["names"]


def test_crd_errors_name_the_fields() -> None:
    bad = copy.deepcopy(CRD)
    bad["metadata"]["name"] = "wrong"
    bad["spec"]["scope"] = "Global"
    bad["spec"]["versions"][1]["storage"] = True
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {
        "type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}
    del bad["spec"]["versions"][1]["schema"]
    paths = {e.path: e.message for e in validate_crd(bad)}
    assert paths["metadata.name"] == ('Invalid value: "wrong": must be '
                                      'spec.names.plural+"."+spec.group')
    assert paths["spec.scope"].startswith('Unsupported value: "Global"')
    assert "exactly one version marked as storage version" in paths["spec.versions"]
    assert paths["spec.versions[0].schema.openAPIV3Schema.properties[spec].type"] == \
        "Required value: must not be empty for specified object fields"
    assert paths["spec.versions[1].schema.openAPIV3Schema"] == \
        "Required value: schemas are required"


def test_crd_missing_basics() -> None:
    errs = validate_crd({"metadata": {"name": "x"}, "spec": {"names": {}, "versions": []}})
    paths = {e.path for e in errs}
    assert {"spec.group", "spec.names.plural", "spec.names.kind", "spec.scope",
            "spec.versions"} <= paths


def test_non_structural_root_and_array_items() -> None:
    crd = copy.deepcopy(CRD)
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {
        "properties": {"list": {"type": "array", "items": {}}}}
    paths = {e.path: e.message for e in validate_crd(crd)}
    root = "spec.versions[0].schema.openAPIV3Schema"
    assert paths[f"{root}.type"] == "Required value: must not be empty at the root"
    assert paths[f"{root}.properties[list].items.type"] == \
        "Required value: must not be empty for specified array items"


def test_unsupported_features_lists_cel_rules() -> None:
    schema = version_schema(CRD, "v1beta1")
    assert schema is not None
    assert unsupported_features(schema) == ["x-kubernetes-validations at <root>"]
    assert unsupported_features(SCHEMA) == []


def test_unknown_fields_are_reported_with_paths() -> None:
    obj = _obj(junk=1, ports=[{"name": "a", "port": 1, "bogus": True}],
               extra={"free": "form"}, labels={"any": "key"})
    obj["top"] = 1
    assert unknown_fields(SCHEMA, obj) == ["spec.junk", "spec.ports[0].bogus", "top"]
    assert "junk" in obj["spec"]  # reporting does not prune the caller's object
    assert unknown_fields(SCHEMA, _obj()) == []
