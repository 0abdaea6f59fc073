"""Field sets for server-side apply (a simplified model of Kubernetes' structured merge).

What is modelled: each Apply records the set of fields the applied configuration
contains in `managedFields[].fieldsV1`, in Kubernetes' encoding (`f:<field>`, list
elements of built-in kinds by merge key `k:{"name":"c"}`, set members `v:"x"`). A later
Apply by the same manager first removes what it applied before and no longer applies
(fields, keyed list elements, set members), then merges the new configuration
(strategic merge for built-in kinds, JSON merge for custom resources).

What is not: ownership is per manager only — conflicts with other managers are never
reported (`force` is accepted and has nothing to override), and lists without a merge
key (and all lists of custom resources) are owned as a whole.
"""

from __future__ import annotations

import json
from typing import Any

from .patching import merge_key

FieldSet = dict[str, Any]  # encoded FieldsV1: "f:x" / "k:{...}" / "v:..." -> FieldSet

_SKIP_TOP = ("apiVersion", "kind", "status")
_SKIP_METADATA = ("name", "namespace", "resourceVersion", "uid", "creationTimestamp",
                  "generation", "managedFields", "selfLink", "deletionTimestamp",
                  "deletionGracePeriodSeconds")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def applied_fields(obj: dict[str, Any], keyed_lists: bool = True) -> FieldSet:
    """The field set of an applied configuration."""
    kind = str(obj.get("kind") or "") if keyed_lists else None
    out: FieldSet = {}
    for key, value in obj.items():
        if key in _SKIP_TOP:
            continue
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _SKIP_METADATA}
            if not value:
                continue
        out[f"f:{key}"] = _value_fields(value, key, "", kind)
    return out


def _map_fields(d: dict[str, Any], parent: str, kind: str | None) -> FieldSet:
    return {f"f:{k}": _value_fields(v, k, parent, kind) for k, v in d.items()}


def _value_fields(value: Any, field: str, parent: str, kind: str | None) -> FieldSet:
    if isinstance(value, dict):
        return _map_fields(value, field, kind)
    if isinstance(value, list) and kind is not None:
        key = merge_key(field, parent, kind)
        if key == "":
            return {f"v:{_compact(v)}": {} for v in value}
        if key and all(isinstance(e, dict) and key in e for e in value):
            return {f"k:{_compact({key: e[key]})}": {".": {}, **_map_fields(e, field, kind)}
                    for e in value}
    return {}


def remove_unowned(current: dict[str, Any], previous: FieldSet, now: FieldSet
                   ) -> dict[str, Any]:
    """Drop from `current` what `previous` applied and `now` no longer applies."""
    for key, sub in previous.items():
        if not key.startswith("f:"):
            continue
        name = key[2:]
        if key not in now:
            if name != "metadata":
                current.pop(name, None)
            continue
        child = current.get(name)
        if sub and isinstance(child, dict):
            remove_unowned(child, sub, now[key])
        elif sub and isinstance(child, list):
            current[name] = _remove_from_list(child, sub, now[key])
    return current


def _remove_from_list(items: list[Any], previous: FieldSet, now: FieldSet) -> list[Any]:
    out = list(items)
    for key, sub in previous.items():
        if key.startswith("v:"):
            if key not in now:
                value = json.loads(key[2:])
                out = [v for v in out if v != value]
        elif key.startswith("k:"):
            ident = json.loads(key[2:])

            def matches(e: Any, ident: dict[str, Any] = ident) -> bool:
                return isinstance(e, dict) and all(e.get(k) == v for k, v in ident.items())

            if key not in now:
                out = [e for e in out if not matches(e)]
            else:
                for e in out:
                    if matches(e):
                        remove_unowned(e, sub, now[key])
    return out
