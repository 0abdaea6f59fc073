"""Kubernetes label selectors (matchLabels + matchExpressions) as normalized matchers.

A selector is parsed once into a sorted tuple of requirements; that tuple is its identity
(`key`), so `{matchLabels: {a: x}}` and `{matchExpressions: [{key: a, operator: In,
values: [x]}]}` are the same selector and share one group. An empty selector matches
everything (Kubernetes semantics for `podSelector: {}` / `namespaceSelector: {}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

IN = "In"
NOT_IN = "NotIn"
EXISTS = "Exists"
DOES_NOT_EXIST = "DoesNotExist"
OPERATORS = (IN, NOT_IN, EXISTS, DOES_NOT_EXIST)

Requirement = tuple[str, str, tuple[str, ...]]


class SelectorError(ValueError):
    """A selector that Kubernetes would reject; `field` is its path in the object."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class LabelSelector:
    """A parsed selector. `keys`: label keys it mentions (a label change on any other key
    cannot change its result). `anchor`: one positive requirement (key, values or None for
    Exists) that every match must satisfy, for looking up candidates in a label index;
    None when the selector has no positive requirement (empty, or only NotIn/DoesNotExist)."""

    __slots__ = ("_equals", "_others", "anchor", "key", "keys")

    def __init__(self, requirements: tuple[Requirement, ...]) -> None:
        self.key = requirements
        self.keys = frozenset(r[0] for r in requirements)
        # Single-value In requirements (all of matchLabels) are checked as plain dict lookups.
        self._equals = tuple((k, v[0]) for k, op, v in requirements if op == IN and len(v) == 1)
        self._others = tuple((k, op, frozenset(v)) for k, op, v in requirements
                             if not (op == IN and len(v) == 1))
        anchor: tuple[str, tuple[str, ...] | None] | None = None
        for k, op, v in requirements:
            if op == IN and (anchor is None or anchor[1] is None or len(v) < len(anchor[1])):
                anchor = (k, v)
            elif op == EXISTS and anchor is None:
                anchor = (k, None)
        self.anchor = anchor

    @property
    def is_empty(self) -> bool:
        return not self.key

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, v in self._equals:
            if labels.get(k) != v:
                return False
        for k, op, values in self._others:
            value = labels.get(k)
            if op == IN:
                if value is None or value not in values:
                    return False
            elif op == NOT_IN:
                if value is not None and value in values:
                    return False
            elif op == EXISTS:
                if value is None:
                    return False
            elif value is not None:  # DoesNotExist
                return False
        return True

    def __repr__(self) -> str:
        return f"LabelSelector({self.describe()})"

    def describe(self) -> str:
        parts = []
        for k, op, v in self.key:
            if op == IN and len(v) == 1:
                parts.append(f"{k}={v[0]}")
            elif op in (IN, NOT_IN):
                parts.append(f"{k} {op.lower()} ({','.join(v)})")
            elif op == EXISTS:
                parts.append(k)
            else:
                parts.append(f"!{k}")
        return ",".join(parts)


MATCH_ALL = LabelSelector(())


def _check_key(key: Any, field: str) -> str:
    if type(key) is not str or not key:
        raise SelectorError(field, f"label key must be a non-empty string, got {key!r}")
    return key


# Selectors are interned: identical selectors (e.g. the same matchLabels in thousands of
# namespaces) share one matcher. Bounded so a stream of distinct selectors cannot grow it.
_interned: dict[tuple[Requirement, ...], LabelSelector] = {}
_INTERN_LIMIT = 100_000


def _intern(requirements: tuple[Requirement, ...]) -> LabelSelector:
    selector = _interned.get(requirements)
    if selector is None:
        if len(_interned) >= _INTERN_LIMIT:
            _interned.clear()
        selector = _interned[requirements] = LabelSelector(requirements)
    return selector


def parse_selector(obj: Mapping[str, Any] | None, field: str) -> LabelSelector:
    """Parse a Kubernetes LabelSelector dict; None or {} selects everything.
    Raises SelectorError naming the offending field."""
    if not obj:
        return MATCH_ALL
    if not isinstance(obj, dict):
        raise SelectorError(field, f"must be an object, got {type(obj).__name__}")
    match_labels = obj.get("matchLabels") or {}
    if type(match_labels) is not dict:
        raise SelectorError(f"{field}.matchLabels", "must be an object")
    exprs = obj.get("matchExpressions")
    if not exprs:
        # Fast path: matchLabels only (the common shape).
        for k, v in match_labels.items():
            if type(k) is not str or not k or type(v) is not str:
                _check_key(k, f"{field}.matchLabels")
                raise SelectorError(f"{field}.matchLabels[{k}]",
                                    f"value must be a string, got {v!r}")
        if len(match_labels) == 1:
            ((k, v),) = match_labels.items()
            return _intern(((k, IN, (v,)),))
        return _intern(tuple(sorted([(k, IN, (v,)) for k, v in match_labels.items()])))
    reqs: set[Requirement] = set()
    for k, v in match_labels.items():
        _check_key(k, f"{field}.matchLabels")
        if type(v) is not str:
            raise SelectorError(f"{field}.matchLabels[{k}]", f"value must be a string, got {v!r}")
        reqs.add((k, IN, (v,)))
    if not isinstance(exprs, list):
        raise SelectorError(f"{field}.matchExpressions", "must be a list")
    for i, expr in enumerate(exprs):
        where = f"{field}.matchExpressions[{i}]"
        if not isinstance(expr, dict):
            raise SelectorError(where, "must be an object")
        key = _check_key(expr.get("key"), f"{where}.key")
        op = expr.get("operator")
        values = expr.get("values") or []
        if op not in OPERATORS:
            raise SelectorError(f"{where}.operator",
                                f"unknown operator {op!r} (expected one of {', '.join(OPERATORS)})")
        if not isinstance(values, list) or not all(type(v) is str for v in values):
            raise SelectorError(f"{where}.values", "must be a list of strings")
        if op in (IN, NOT_IN) and not values:
            raise SelectorError(f"{where}.values", f"must be non-empty for operator {op}")
        if op in (EXISTS, DOES_NOT_EXIST) and values:
            raise SelectorError(f"{where}.values", f"must be empty for operator {op}")
        reqs.add((key, op, tuple(sorted(set(values)))))
    return _intern(tuple(sorted(reqs)))
