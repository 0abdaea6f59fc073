"""Field sets for server-side apply (a simplified model of Kubernetes' structured merge).

What is modelled: each Apply records the set of map fields the applied configuration
contains (in `managedFields[].fieldsV1`, Kubernetes' `f:<name>` encoding); a later Apply
by the same manager removes the fields it set before and no longer sets, then merges the
new configuration (strategic merge for built-in kinds, JSON merge for custom resources).

What is not: lists are owned as a whole (no `k:`/`v:` element keys), and conflicts with
other managers are never reported — `force` is accepted and has nothing to override.
That is enough for `kubectl apply --server-side` round trips in the lab.
"""

from __future__ import annotations

from typing import Any

FieldSet = dict[str, Any]  # name -> FieldSet of children ({} for a leaf)

# Set by the server, never "owned" by an applier.
_SKIP_TOP = ("apiVersion", "kind", "status")
_SKIP_METADATA = ("name", "namespace", "resourceVersion", "uid", "creationTimestamp",
                  "generation", "managedFields", "selfLink", "deletionTimestamp",
                  "deletionGracePeriodSeconds")


def applied_fields(obj: dict[str, Any]) -> FieldSet:
    out: FieldSet = {}
    for key, value in obj.items():
        if key in _SKIP_TOP:
            continue
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _SKIP_METADATA}
            if not value:
                continue
        out[key] = _fields(value)
    return out


def _fields(value: Any) -> FieldSet:
    if isinstance(value, dict):
        return {k: _fields(v) for k, v in value.items()}
    return {}


def to_fields_v1(fields: FieldSet) -> dict[str, Any]:
    return {f"f:{k}": to_fields_v1(v) for k, v in fields.items()}


def from_fields_v1(encoded: dict[str, Any]) -> FieldSet:
    return {k[2:]: from_fields_v1(v) for k, v in encoded.items()
            if k.startswith("f:") and isinstance(v, dict)}


def remove_unowned(current: dict[str, Any], previous: FieldSet, now: FieldSet
                   ) -> dict[str, Any]:
    """Drop from `current` the fields `previous` applied and `now` no longer applies."""
    for key, sub in previous.items():
        if key not in now:
            if key != "metadata":
                current.pop(key, None)
            continue
        child = current.get(key)
        if sub and isinstance(child, dict):
            remove_unowned(child, sub, now[key])
    return current
