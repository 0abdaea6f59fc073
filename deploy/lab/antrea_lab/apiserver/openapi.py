"""OpenAPI v3 documents (`/openapi/v3`, `/openapi/v3/<group-version>`).

kubectl reads them for one decision that matters: `kubectl apply` validates on the
server (fieldValidation=Strict) only if the PATCH operation of the object's kind, found
by its `x-kubernetes-group-version-kind`, lists an inline `fieldValidation` query
parameter; otherwise it falls back to client-side validation it cannot do here. Schemas
are included so `kubectl explain` finds something: a custom resource's own
openAPIV3Schema, and for built-in kinds an open object (the lab does not carry kube's
type definitions).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .registry import ResourceInfo

OPENAPI_VERSION = "3.0.0"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
JSON = "application/json"
# Strategic merge patch is accepted for built-in kinds but deliberately not advertised:
# if it were, kubectl would compute apply patches from our (field-less) built-in schemas
# and warn; without it kubectl falls back to its compiled-in types, which are exact.
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/apply-patch+yaml")

# Group -> the Go package name kube uses in its schema names (io.k8s.api.<pkg>.<v>.<Kind>).
_BUILTIN_PACKAGES = {
    "": "io.k8s.api.core",
    "apps": "io.k8s.api.apps",
    "discovery.k8s.io": "io.k8s.api.discovery",
    "networking.k8s.io": "io.k8s.api.networking",
    "coordination.k8s.io": "io.k8s.api.coordination",
    "authentication.k8s.io": "io.k8s.api.authentication",
    "authorization.k8s.io": "io.k8s.api.authorization",
    "rbac.authorization.k8s.io": "io.k8s.api.rbac",
    "apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
    "policy": "io.k8s.api.policy",
    "batch": "io.k8s.api.batch",
    "autoscaling": "io.k8s.api.autoscaling",
    "admissionregistration.k8s.io": "io.k8s.api.admissionregistration",
}


def gv_path_of(info: ResourceInfo) -> str:
    """`api/v1` or `apis/<group>/<version>`: the key under /openapi/v3 `paths`."""
    return f"apis/{info.group}/{info.version}" if info.group else f"api/{info.version}"


def schema_name(group: str, version: str, kind: str) -> str:
    """The components.schemas name kube uses: io.k8s.api.core.v1.Pod, com.example.v1.Foo."""
    pkg = _BUILTIN_PACKAGES.get(group)
    if pkg is None:
        pkg = ".".join(reversed(group.split(".")))
    return f"{pkg}.{version}.{kind}"


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, description: str, schema_type: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description,
            "schema": {"type": schema_type, "uniqueItems": True}}


_PRETTY = _query("pretty", "If 'true', then the output is pretty printed.")
_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be "
                            "persisted. Valid value: All.")
_FIELD_MANAGER = _query("fieldManager", "A name associated with the actor or entity that "
                                        "is making these changes.")
_FIELD_VALIDATION = _query(
    "fieldValidation", "Instructs the server how to handle objects in the request "
                       "containing unknown or duplicate fields: Ignore, Warn or Strict.")
_FORCE = _query("force", "Force is going to \"force\" Apply requests.", "boolean")
_LIST_PARAMS = [
    _query("allowWatchBookmarks", "Request bookmark events.", "boolean"),
    _query("continue", "The continue option from a previous list."),
    _query("fieldSelector", "A selector on the objects' fields."),
    _query("labelSelector", "A selector on the objects' labels."),
    _query("limit", "Maximum number of objects to return.", "integer"),
    _query("resourceVersion", "Which resourceVersion to serve from."),
    _query("resourceVersionMatch", "How resourceVersion applies to list calls."),
    _query("sendInitialEvents", "Start a watch with synthetic ADDED events.", "boolean"),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes instead of listing.", "boolean"),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _query("gracePeriodSeconds", "Seconds before the object should be deleted.", "integer"),
    _query("propagationPolicy", "Orphan, Background or Foreground."),
]


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "description": description, "required": True,
            "schema": {"type": "string", "uniqueItems": True}}


def _response(schema: str, *codes: str) -> dict[str, Any]:
    body = {"content": {JSON: {"schema": _ref(schema)},
                        "application/yaml": {"schema": _ref(schema)}}}
    out: dict[str, Any] = {c: {"description": {"200": "OK", "201": "Created",
                                               "202": "Accepted"}[c], **body} for c in codes}
    out["401"] = {"description": "Unauthorized"}
    return out


def _operation(action: str, op_id: str, gvk: dict[str, str], response: str, codes: tuple[str, ...],
               params: list[dict[str, Any]], body: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    op: dict[str, Any] = {
        "description": f"{action} {gvk['kind']}",
        "operationId": op_id,
        "parameters": params,
        "responses": _response(response, *codes),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": dict(gvk),
    }
    if body is not None:
        op["requestBody"] = body
    return op


def _body(schema: str, content_types: tuple[str, ...] = ("*/*",)) -> dict[str, Any]:
    return {"content": {ct: {"schema": _ref(schema)} for ct in content_types}, "required": True}


def _op_id(verb: str, info: ResourceInfo, namespaced: bool, suffix: str = "") -> str:
    group = "".join(p.capitalize() for p in (info.group or "core").split(".")[:1])
    scope = "Namespaced" if namespaced else ""
    return f"{verb}{group}{info.version.capitalize()}{scope}{info.kind}{suffix}"


def _resource_paths(info: ResourceInfo) -> dict[str, dict[str, Any]]:
    prefix = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    gvk = _gvk(info.group, info.version, info.kind)
    kind_schema = schema_name(info.group, info.version, info.kind)
    list_schema = schema_name(info.group, info.version, info.list_kind)
    verbs = set(info.verbs)
    ns_param = _path_param("namespace", "object name and auth scope, such as for teams and "
                                        "projects")
    name_param = _path_param("name", f"name of the {info.kind}")
    collection = (f"{prefix}/namespaces/{{namespace}}/{info.resource}" if info.namespaced
                  else f"{prefix}/{info.resource}")
    ns = info.namespaced
    write = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    paths: dict[str, dict[str, Any]] = {}

    coll: dict[str, Any] = {"parameters": ([ns_param] if ns else []) + [_PRETTY]}
    if "list" in verbs:
        coll["get"] = _operation("list", _op_id("list", info, ns), gvk, list_schema, ("200",),
                                 list(_LIST_PARAMS))
    if "create" in verbs:
        coll["post"] = _operation("post", _op_id("create", info, ns), gvk, kind_schema,
                                  ("200", "201", "202"), list(write), _body(kind_schema))
    if "deletecollection" in verbs:
        coll["delete"] = _operation("deletecollection", _op_id("deletecollection", info, ns),
                                    gvk, f"{META}.Status", ("200",),
                                    _DELETE_PARAMS + _LIST_PARAMS)
    paths[collection] = coll
    if ns and "list" in verbs:
        paths[f"{prefix}/{info.resource}"] = {
            "parameters": [_PRETTY],
            "get": _operation("list", _op_id("list", info, False, "ForAllNamespaces"), gvk,
                              list_schema, ("200",), list(_LIST_PARAMS))}

    item: dict[str, Any] = {"parameters": [name_param] + ([ns_param] if ns else []) + [_PRETTY]}
    if "get" in verbs:
        item["get"] = _operation("get", _op_id("read", info, ns), gvk, kind_schema, ("200",), [])
    if "update" in verbs:
        item["put"] = _operation("put", _op_id("replace", info, ns), gvk, kind_schema,
                                 ("200", "201"), list(write), _body(kind_schema))
    if "patch" in verbs:
        item["patch"] = _operation("patch", _op_id("patch", info, ns), gvk, kind_schema,
                                   ("200", "201"), [*write, _FORCE],
                                   _body(f"{META}.Patch", PATCH_TYPES))
    if "delete" in verbs:
        item["delete"] = _operation("delete", _op_id("delete", info, ns), gvk,
                                    f"{META}.Status", ("200", "202"), list(_DELETE_PARAMS),
                                    {"content": {"*/*": {"schema": _ref(f"{META}.DeleteOptions")}}})
    if len(item) > 1:
        paths[f"{collection}/{{name}}"] = item

    for sub in ("status", "scale"):
        if sub not in info.subresources:
            continue
        sub_schema = kind_schema
        sub_gvk = gvk
        if sub == "scale":
            sub_gvk = _gvk("autoscaling", "v1", "Scale")
            sub_schema = schema_name("autoscaling", "v1", "Scale")
        suffix = sub.capitalize()
        paths[f"{collection}/{{name}}/{sub}"] = {
            "parameters": item["parameters"],
            "get": _operation("get", _op_id("read", info, ns, suffix), sub_gvk, sub_schema,
                              ("200",), []),
            "put": _operation("put", _op_id("replace", info, ns, suffix), sub_gvk, sub_schema,
                              ("200", "201"), list(write), _body(sub_schema)),
            "patch": _operation("patch", _op_id("patch", info, ns, suffix), sub_gvk, sub_schema,
                                ("200", "201"), [*write, _FORCE],
                                _body(f"{META}.Patch", PATCH_TYPES)),
        }
    return paths


def _open_object(description: str) -> dict[str, Any]:
    return {"type": "object", "description": description,
            "x-kubernetes-preserve-unknown-fields": True}


def _common_schemas() -> dict[str, Any]:
    return {
        f"{META}.ObjectMeta": _open_object(
            "ObjectMeta is metadata that all persisted resources must have."),
        f"{META}.ListMeta": _open_object("ListMeta describes metadata of lists."),
        f"{META}.Status": _open_object("Status is a return value for calls that don't return "
                                       "other objects."),
        f"{META}.Patch": {"type": "object",
                          "description": "Patch is provided to give a concrete name and type "
                                         "to the Kubernetes PATCH request body."},
        f"{META}.DeleteOptions": _open_object("DeleteOptions may be provided when deleting an "
                                              "API object."),
        schema_name("autoscaling", "v1", "Scale"): {
            **_open_object("Scale represents a scaling request for a resource."),
            "x-kubernetes-group-version-kind": [_gvk("autoscaling", "v1", "Scale")]},
    }


def _type_meta(info: ResourceInfo, kind: str) -> dict[str, Any]:
    return {
        "apiVersion": {"type": "string", "description": "APIVersion defines the versioned "
                                                        "schema of this representation of an "
                                                        "object.",
                       "enum": [info.group_version]},
        "kind": {"type": "string", "description": "Kind is a string value representing the "
                                                  "REST resource this object represents.",
                 "enum": [kind]},
    }


def _kind_schema(info: ResourceInfo) -> dict[str, Any]:
    gvk = [_gvk(info.group, info.version, info.kind)]
    if info.schema:
        # kube serves the CRD schema with apiVersion/kind/metadata filled in.
        schema = copy.deepcopy(info.schema)
        props = schema.setdefault("properties", {})
        for key, value in _type_meta(info, info.kind).items():
            props.setdefault(key, value)
        props["metadata"] = {"allOf": [_ref(f"{META}.ObjectMeta")],
                             "description": "Standard object's metadata."}
        schema.setdefault("type", "object")
    else:
        schema = _open_object(f"{info.kind} ({info.group_version}); the lab serves no field "
                              "schema for built-in kinds.")
        schema["properties"] = {**_type_meta(info, info.kind),
                                "metadata": {"allOf": [_ref(f"{META}.ObjectMeta")],
                                             "description": "Standard object's metadata."}}
    schema["x-kubernetes-group-version-kind"] = gvk
    return schema


def _list_schema(info: ResourceInfo) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"{info.list_kind} is a list of {info.kind}.",
        "required": ["items"],
        "properties": {
            **_type_meta(info, info.list_kind),
            "items": {"type": "array",
                      "items": _ref(schema_name(info.group, info.version, info.kind))},
            "metadata": {"allOf": [_ref(f"{META}.ListMeta")]},
        },
        "x-kubernetes-group-version-kind": [_gvk(info.group, info.version, info.list_kind)],
    }


def openapi_v3_document(group_version_path: str, infos: list[ResourceInfo]) -> dict[str, Any]:
    """The OpenAPI 3.0 document of one group-version (`api/v1`, `apis/<g>/<v>`).

    Returns a document with empty paths when no resource belongs to it; the server
    answers 404 for unknown group-versions before calling this.
    """
    gv_path = group_version_path.strip("/")
    paths: dict[str, Any] = {}
    schemas = _common_schemas()
    for info in sorted(infos, key=lambda i: i.resource):
        if gv_path_of(info) != gv_path:
            continue
        paths.update(_resource_paths(info))
        schemas[schema_name(info.group, info.version, info.kind)] = _kind_schema(info)
        if "list" in info.verbs:
            schemas[schema_name(info.group, info.version, info.list_kind)] = _list_schema(info)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description":
                                                "Bearer Token authentication",
                                                "name": "authorization", "in": "header"}},
        },
        "security": [{"BearerToken": []}],
    }


def document_hash(document: dict[str, Any]) -> str:
    """Content hash for `serverRelativeURL` (clients cache documents by it)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha512(canonical).hexdigest().upper()


def openapi_v3_paths(infos: list[ResourceInfo]) -> dict[str, Any]:
    """Body of GET /openapi/v3: one entry per served group-version, with a content hash."""
    paths: dict[str, Any] = {}
    for gv_path in sorted({gv_path_of(i) for i in infos}):
        digest = document_hash(openapi_v3_document(gv_path, infos))
        paths[gv_path] = {"serverRelativeURL": f"/openapi/v3/{gv_path}?hash={digest}"}
    return {"paths": paths}
