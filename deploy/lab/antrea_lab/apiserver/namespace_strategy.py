"""Namespaces: the `kubernetes` finalizer, phase, and the metadata.name label."""

from __future__ import annotations

from .errors import FieldError
from .strategy import Obj, Strategy, spec_of

NAME_LABEL = "kubernetes.io/metadata.name"


class NamespaceStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        md = obj["metadata"]
        if md.get("name"):
            labels = md.get("labels") or {}
            md["labels"] = {**labels, NAME_LABEL: md["name"]}

    def prepare_create(self, obj: Obj) -> None:
        spec_of(obj)["finalizers"] = ["kubernetes"]
        obj["status"] = {"phase": "Active"}

    def prepare_update(self, obj: Obj, old: Obj) -> None:
        # spec.finalizers changes only through the finalize subresource.
        old_fin = spec_of(old).get("finalizers")
        spec = spec_of(obj)
        if old_fin is None:
            spec.pop("finalizers", None)
        else:
            spec["finalizers"] = list(old_fin)

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        fins = spec_of(obj).get("finalizers") or []
        if not isinstance(fins, list) or not all(isinstance(f, str) for f in fins):
            return [FieldError("spec.finalizers", "Invalid value: must be a list of strings")]
        return []


def terminating(ns: Obj) -> bool:
    return bool(ns["metadata"].get("deletionTimestamp")) or \
        (ns.get("status") or {}).get("phase") == "Terminating"
