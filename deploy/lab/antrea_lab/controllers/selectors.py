"""Label and node-selector matching on plain dicts (Service selectors, node affinity)."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def labels_of(obj: JSON) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def matches_map(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """A Service-style equality selector; an empty selector matches nothing here
    because Services without a selector are not managed by the controllers."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def _match_requirement(expr: JSON, value: str | None) -> bool:
    op = expr.get("operator")
    values = expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        try:
            have, want = int(value or ""), int(values[0])
        except (ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return False  # unknown operators never match, as the API treats them as invalid


def matches_node_selector_term(term: JSON, node: JSON) -> bool:
    """matchExpressions (labels) and matchFields (metadata.name) are ANDed; an empty
    term matches nothing (Kubernetes semantics)."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = labels_of(node)
    for expr in exprs:
        if not _match_requirement(expr, labels.get(expr.get("key", ""))):
            return False
    for expr in fields:
        if expr.get("key") != "metadata.name":
            return False
        if not _match_requirement(expr, (node.get("metadata") or {}).get("name")):
            return False
    return True


def matches_node_selector(selector: JSON, node: JSON) -> bool:
    """A NodeSelector: the terms are ORed."""
    return any(matches_node_selector_term(t, node)
               for t in selector.get("nodeSelectorTerms") or [])
