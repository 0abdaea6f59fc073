"""Parse API paths (`/api/v1/namespaces/ns/pods/name/status`, ...) into targets.

Routing is done here rather than with aiohttp's router because CRDs add resources at
run time; the rules follow kube-apiserver's request-info parsing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Catalog
from .errors import APIError
from .registry import ResourceInfo

# /api/v1/namespaces/<name>/<these> address the Namespace itself, not a namespaced resource.
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class Discovery:
    """A discovery document: ("api",), ("api", "v1"), ("apis",), ("apis", g), ("apis", g, v)."""

    parts: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    info: ResourceInfo
    namespace: str | None  # None: cluster-scoped, or all namespaces for a namespaced list
    name: str | None
    subresource: str = ""
    watch_path: bool = False  # legacy /watch/ prefix


def not_found_path() -> APIError:
    return APIError(404, "NotFound", "the server could not find the requested resource")


def parse(path: str, catalog: Catalog) -> Discovery | Target:
    segs = [s for s in path.split("/") if s]
    if not segs or segs[0] not in ("api", "apis"):
        raise not_found_path()
    if segs[0] == "api":
        if len(segs) == 1:
            return Discovery(("api",))
        group, version, rest = "", segs[1], segs[2:]
    else:
        if len(segs) <= 3:
            return Discovery(tuple(segs))
        group, version, rest = segs[1], segs[2], segs[3:]
    if not rest:
        return Discovery(("api", version) if segs[0] == "api" else ("apis", group, version))
    watch = False
    if rest[0] == "watch":
        watch, rest = True, rest[1:]
        if not rest:
            raise not_found_path()
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise not_found_path()
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    info = catalog.lookup(group, version, resource)
    if info is None:
        raise not_found_path()
    if namespace is not None and not info.namespaced:
        raise not_found_path()
    if info.namespaced and namespace is None and name is not None:
        raise not_found_path()
    if sub and sub not in info.subresources:
        raise not_found_path()
    return Target(info, namespace, name, sub, watch)
