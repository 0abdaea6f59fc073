"""Label and field selectors of list/watch requests, compiled once into predicates."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import APIError, bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` value lists."""
    terms, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        terms.append("".join(cur))
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str | None) -> Predicate | None:
    """Compile `app=web,tier!=db,env in (a,b),!legacy` into a predicate over objects."""
    if not text or not text.strip():
        return None
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(text):
        m = _EQ_RE.match(term)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                checks.append(lambda lbl, k=key, v=value: lbl.get(k) != v)
            else:
                checks.append(lambda lbl, k=key, v=value: lbl.get(k) == v)
            continue
        m = _SET_RE.match(term)
        if not m:
            raise bad_request(f"unable to parse requirement: {term!r} in labelSelector {text!r}")
        neg, key, op, values = m.groups()
        if op:
            if neg:
                raise bad_request(f"unable to parse requirement: {term!r}")
            vals = frozenset(v.strip() for v in values.split(",") if v.strip())
            if op == "in":
                checks.append(lambda lbl, k=key, vs=vals: lbl.get(k) in vs)
            else:
                checks.append(lambda lbl, k=key, vs=vals: lbl.get(k) not in vs)
        elif neg:
            checks.append(lambda lbl, k=key: k not in lbl)
        else:
            checks.append(lambda lbl, k=key: k in lbl)

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(c(labels) for c in checks)

    return match


def _path_getter(path: tuple[str, ...]) -> Callable[[dict[str, Any]], str]:
    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for part in path:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(part)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


# Fields every kind supports, plus per-resource extras (those Kubernetes supports and that
# the lab's controllers and kubelet use).
_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": ("spec.nodeName", "status.phase", "spec.restartPolicy", "spec.schedulerName",
             "spec.serviceAccountName", "status.podIP", "status.nominatedNodeName"),
    "secrets": ("type",),
    "events": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion",
               "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
               "reportingComponent", "source", "type"),
    "namespaces": ("status.phase",),
    "nodes": ("spec.unschedulable",),
    "services": ("spec.clusterIP", "spec.type"),
    "replicasets": ("status.replicas",),
}


def parse_field_selector(text: str | None, resource: str) -> tuple[Predicate | None, str | None]:
    """Compile a field selector; also return the name it pins (`metadata.name=x`), if any.

    Unsupported fields are a 400 naming the field, as Kubernetes answers.
    """
    if not text or not text.strip():
        return None, None
    allowed = set(_COMMON_FIELDS) | set(_EXTRA_FIELDS.get(resource, ()))
    checks: list[Predicate] = []
    pinned_name: str | None = None
    for term in _split_terms(text):
        m = _EQ_RE.match(term)
        if not m:
            raise bad_request(f"invalid field selector: {term!r}")
        field, op, value = m.groups()
        if field not in allowed:
            raise APIError(400, "BadRequest",
                           f'field label not supported: {field}')
        getter = _path_getter(tuple(field.split(".")))
        if op == "!=":
            checks.append(lambda o, g=getter, v=value: g(o) != v)
        else:
            checks.append(lambda o, g=getter, v=value: g(o) == v)
            if field == "metadata.name":
                pinned_name = value

    def match(obj: dict[str, Any]) -> bool:
        return all(c(obj) for c in checks)

    return match, pinned_name
