"""Discovery documents: /api, /apis, /apis/<group>, and per group-version resource lists.

Only the classic (unaggregated) documents are served; clients asking for aggregated
discovery get these as plain application/json and fall back, as they do with older
servers.
"""

from __future__ import annotations

from typing import Any

from .catalog import Catalog
from .errors import APIError
from .registry import ResourceInfo

# subresource -> (kind, group, version, verbs); None group/version = the parent's.
_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None, list[str]]] = {
    "status": (None, None, None, ["get", "patch", "update"]),
    "binding": ("Binding", "", "v1", ["create"]),
    "token": ("TokenRequest", "authentication.k8s.io", "v1", ["create"]),
    "finalize": (None, None, None, ["update"]),
    "scale": ("Scale", "autoscaling", "v1", ["get", "patch", "update"]),
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(catalog: Catalog) -> dict[str, Any]:
    groups = [_group_doc(g, vs) for g, vs in catalog.groups() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(catalog: Catalog, group: str) -> dict[str, Any]:
    for g, vs in catalog.groups():
        if g == group and g:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(g, vs)}
    raise APIError(404, "NotFound", "the server could not find the requested resource")


def _resource_entry(info: ResourceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": info.resource, "singularName": info.singular_name,
                             "namespaced": info.namespaced, "kind": info.kind,
                             "verbs": list(info.verbs)}
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    return entry


def resource_list(catalog: Catalog, group: str, version: str) -> dict[str, Any]:
    infos = catalog.in_group_version(group, version)
    if not infos:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    resources = []
    for info in sorted(infos, key=lambda i: i.resource):
        resources.append(_resource_entry(info))
        for sub in info.subresources:
            kind, sgroup, sversion, verbs = _SUBRESOURCES.get(sub, (None, None, None, ["get"]))
            entry: dict[str, Any] = {"name": f"{info.resource}/{sub}", "singularName": "",
                                     "namespaced": info.namespaced,
                                     "kind": kind or info.kind, "verbs": verbs}
            if sgroup is not None:
                entry["group"], entry["version"] = sgroup, sversion
            resources.append(entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}
