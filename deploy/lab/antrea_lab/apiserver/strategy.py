"""Per-kind behaviour hooks (defaults, validation, side effects) around generic storage.

Kubernetes calls this a "strategy": the generic REST code asks it what to do at each
step. Kinds without special needs use `Strategy` itself.
"""

from __future__ import annotations

from typing import Any

from .errors import FieldError

Obj = dict[str, Any]


class Strategy:
    # Kinds whose status is set by the server on create (dropped from the request body).
    reset_status_on_create = True

    def default(self, obj: Obj) -> None:
        """Fill defaults (create and update bodies alike, as Kubernetes decoding does)."""

    def prepare_create(self, obj: Obj) -> None:
        """Server-owned fields of a new object (after defaults)."""

    def prepare_update(self, obj: Obj, old: Obj) -> None:
        """Carry server-owned fields from the old version into an update."""

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        return []

    def commit_create(self, obj: Obj) -> None:
        """Take resources (IPs, ports) just before the object is stored; may raise APIError."""

    def commit_update(self, obj: Obj, old: Obj) -> None:
        """Take/release resources for an update just before it is stored; may raise."""

    def after_write(self, obj: Obj, old: Obj | None) -> None:
        """Side effects once a version is stored (e.g. a CRD starts serving)."""

    def after_delete(self, obj: Obj) -> None:
        """Release what the object held once it is gone."""


def spec_of(obj: Obj) -> Obj:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = {}
        obj["spec"] = spec
    return spec
