"""The set of resources currently served: built-in kinds plus those CRDs add at run time."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .registry import BUILTIN, ResourceInfo

# Discovery lists groups in this order (core first); CRD groups follow, sorted.
_GROUP_ORDER = ("", "apps", "events.k8s.io", "authentication.k8s.io", "rbac.authorization.k8s.io",
                "networking.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
                "apiextensions.k8s.io")


class Catalog:
    def __init__(self, infos: Iterable[ResourceInfo] = BUILTIN) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceInfo] = {}
        # CRD name -> infos it serves (one per served version).
        self._by_crd: dict[str, list[ResourceInfo]] = {}
        # Bumped on every change, so derived documents (OpenAPI) can be cached.
        self.generation = 0
        for info in infos:
            self._by_gvr[(info.group, info.version, info.resource)] = info

    def lookup(self, group: str, version: str, resource: str) -> ResourceInfo | None:
        return self._by_gvr.get((group, version, resource))

    def all(self) -> list[ResourceInfo]:
        return list(self._by_gvr.values())

    def storage_info(self, group: str, resource: str) -> ResourceInfo | None:
        """Any served version of (group, resource); storage does not depend on the version."""
        for info in self._by_gvr.values():
            if info.group == group and info.resource == resource:
                return info
        return None

    def groups(self) -> list[tuple[str, list[str]]]:
        """[(group, [versions, preferred first])] in discovery order."""
        versions: dict[str, list[str]] = {}
        for info in self._by_gvr.values():
            vs = versions.setdefault(info.group, [])
            if info.version not in vs:
                vs.append(info.version)
        order = {g: i for i, g in enumerate(_GROUP_ORDER)}
        names = sorted(versions, key=lambda g: (order.get(g, len(order)), g))
        return [(g, sorted(versions[g], key=_version_priority)) for g in names]

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [i for i in self._by_gvr.values() if i.group == group and i.version == version]

    def set_crd(self, crd_name: str, infos: list[ResourceInfo]) -> None:
        self.remove_crd(crd_name)
        self._by_crd[crd_name] = infos
        self.generation += 1
        for info in infos:
            self._by_gvr[(info.group, info.version, info.resource)] = info

    def remove_crd(self, crd_name: str) -> list[ResourceInfo]:
        infos = self._by_crd.pop(crd_name, [])
        self.generation += 1
        for info in infos:
            self._by_gvr.pop((info.group, info.version, info.resource), None)
        return infos

    def crd_infos(self, crd_name: str) -> list[ResourceInfo]:
        return list(self._by_crd.get(crd_name, []))


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not m:
        return (3, 0, 0)
    major, stage, minor = m.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0))
