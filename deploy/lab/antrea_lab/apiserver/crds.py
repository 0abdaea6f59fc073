"""CustomResourceDefinitions: validation, status, and serving their resources.

A stored CRD becomes one `ResourceInfo` per served version in the catalog; custom
resources are validated/pruned/defaulted against the version's structural schema.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from .catalog import Catalog
from .errors import FieldError
from .registry import ResourceInfo
from .strategy import Obj, Strategy, spec_of

log = logging.getLogger("antrea.lab.apiserver.crds")


def infos_for(crd: Obj) -> list[ResourceInfo]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    infos = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        subs = v.get("subresources") or {}
        subresources = tuple(s for s in ("status", "scale") if s in subs)
        infos.append(ResourceInfo(
            group=spec.get("group", ""), version=v["name"], resource=names.get("plural", ""),
            kind=names.get("kind", ""), namespaced=spec.get("scope") == "Namespaced",
            singular=names.get("singular", ""),
            short_names=tuple(names.get("shortNames") or ()),
            subresources=subresources,
            categories=tuple(names.get("categories") or ()), builtin=False,
            schema=(v.get("schema") or {}).get("openAPIV3Schema"),
            printer_columns=tuple(v.get("additionalPrinterColumns") or ()),
        ))
    return infos


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(crd: Obj, old_status: dict[str, Any] | None) -> dict[str, Any]:
    spec = spec_of(crd)
    names = dict(spec.get("names") or {})
    if names.get("kind"):
        names.setdefault("listKind", names["kind"] + "List")
        names.setdefault("singular", names["kind"].lower())
    stored = list((old_status or {}).get("storedVersions") or [])
    for v in spec.get("versions") or []:
        if v.get("storage") and v.get("name") not in stored:
            stored.append(v["name"])
    old_conds = {c.get("type"): c for c in (old_status or {}).get("conditions") or []}
    conds = []
    for ctype, reason, message in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted")):
        prev = old_conds.get(ctype)
        conds.append({"type": ctype, "status": "True", "reason": reason, "message": message,
                      "lastTransitionTime": prev.get("lastTransitionTime") if prev else _now()})
    return {"conditions": conds, "acceptedNames": names, "storedVersions": stored}


class CRDStrategy(Strategy):
    def __init__(self, catalog: Catalog, delete_objects: Callable[[ResourceInfo], None]) -> None:
        self.catalog = catalog
        self.delete_objects = delete_objects

    def default(self, obj: Obj) -> None:
        spec = spec_of(obj)
        names = spec.get("names")
        if isinstance(names, dict) and names.get("kind"):
            names.setdefault("listKind", names["kind"] + "List")
            names.setdefault("singular", str(names["kind"]).lower())
        spec.setdefault("scope", "Namespaced")
        spec.setdefault("conversion", {"strategy": "None"})

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = _status(obj, None)

    def prepare_update(self, obj: Obj, old: Obj) -> None:
        obj["status"] = _status(obj, old.get("status"))

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        from .schema import validate_crd

        errs = list(validate_crd(obj))
        spec = spec_of(obj)
        names = spec.get("names") or {}
        want = f"{names.get('plural', '')}.{spec.get('group', '')}"
        if obj["metadata"].get("name") != want and not any(e.path == "metadata.name"
                                                          for e in errs):
            errs.append(FieldError("metadata.name", f'Invalid value: "{obj["metadata"].get("name")}'
                                   f'": must be spec.names.plural+"."+spec.group'))
        if old is not None:
            old_spec = spec_of(old)
            for field in ("group", "scope"):
                if spec.get(field) != old_spec.get(field) and field == "group":
                    errs.append(FieldError(f"spec.{field}", f'Invalid value: "{spec.get(field)}"'
                                           ": field is immutable"))
        return errs

    def after_write(self, obj: Obj, old: Obj | None) -> None:
        name = obj["metadata"]["name"]
        if obj["metadata"].get("deletionTimestamp"):
            return
        infos = infos_for(obj)
        self.catalog.set_crd(name, infos)
        log.info("serving custom resource crd=%s versions=%s", name,
                 ",".join(i.version for i in infos))

    def after_delete(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        infos = self.catalog.crd_infos(name) or infos_for(obj)
        if infos:
            self.delete_objects(infos[0])
        self.catalog.remove_crd(name)
        log.info("stopped serving custom resource crd=%s", name)


class CustomResourceStrategy(Strategy):
    """Objects of a CRD: structural-schema pruning, defaulting and validation."""

    def __init__(self, info: ResourceInfo) -> None:
        self.info = info
        self.reset_status_on_create = "status" in info.subresources

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        if not self.info.schema:
            return []
        from .schema import prune_default_validate

        pruned, errs = prune_default_validate(self.info.schema, obj)
        if pruned is not obj:
            md = obj["metadata"]
            obj.clear()
            obj.update(pruned)
            obj["metadata"] = md  # metadata is ours, never pruned
        return list(errs)
