"""Label selector semantics (Kubernetes' matchLabels + matchExpressions) and normalization."""

from __future__ import annotations

import pytest

from antrea_core.controller.grouping import SelectorError, parse_selector

pytestmark = pytest.mark.unit


def expr(key: str, op: str, *values: str) -> dict:
    e: dict = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return e


@pytest.mark.parametrize("selector", [None, {}, {"matchLabels": {}, "matchExpressions": []}])
def test_empty_selector_matches_everything(selector: dict | None) -> None:
    sel = parse_selector(selector, "podSelector")
    assert sel.is_empty
    assert sel.matches({}) and sel.matches({"a": "b"})


def test_match_labels_requires_every_pair() -> None:
    sel = parse_selector({"matchLabels": {"app": "web", "tier": "fe"}}, "s")
    assert sel.matches({"app": "web", "tier": "fe", "extra": "x"})
    assert not sel.matches({"app": "web"})
    assert not sel.matches({"app": "db", "tier": "fe"})


@pytest.mark.parametrize(("expression", "labels", "expected"), [
    (expr("env", "In", "prod", "staging"), {"env": "prod"}, True),
    (expr("env", "In", "prod", "staging"), {"env": "dev"}, False),
    (expr("env", "In", "prod"), {}, False),
    (expr("env", "NotIn", "prod"), {"env": "dev"}, True),
    (expr("env", "NotIn", "prod"), {"env": "prod"}, False),
    (expr("env", "NotIn", "prod"), {}, True),  # a missing key is "not in"
    (expr("env", "Exists"), {"env": ""}, True),
    (expr("env", "Exists"), {"other": "x"}, False),
    (expr("env", "DoesNotExist"), {}, True),
    (expr("env", "DoesNotExist"), {"env": "x"}, False),
])
def test_match_expression_operators(expression: dict, labels: dict, expected: bool) -> None:
    sel = parse_selector({"matchExpressions": [expression]}, "s")
    assert sel.matches(labels) is expected


def test_labels_and_expressions_are_anded() -> None:
    sel = parse_selector({"matchLabels": {"app": "web"},
                          "matchExpressions": [expr("env", "NotIn", "prod")]}, "s")
    assert sel.matches({"app": "web", "env": "dev"})
    assert not sel.matches({"app": "web", "env": "prod"})
    assert not sel.matches({"env": "dev"})


def test_equivalent_selectors_normalize_to_one_key() -> None:
    a = parse_selector({"matchLabels": {"b": "2", "a": "1"}}, "s")
    b = parse_selector({"matchExpressions": [expr("a", "In", "1"), expr("b", "In", "2")]}, "s")
    c = parse_selector({"matchExpressions": [expr("x", "In", "q", "p", "p")]}, "s")
    d = parse_selector({"matchExpressions": [expr("x", "In", "p", "q")]}, "s")
    assert a.key == b.key and a is b  # interned: one matcher shared
    assert c.key == d.key
    assert a.key != c.key


def test_unknown_operator_names_the_field() -> None:
    with pytest.raises(SelectorError) as err:
        parse_selector({"matchExpressions": [expr("a", "In", "x"), expr("b", "Equals", "y")]},
                       "spec.podSelector")
    assert err.value.field == "spec.podSelector.matchExpressions[1].operator"
    assert "Equals" in str(err.value)


@pytest.mark.parametrize(("expression", "field"), [
    (expr("a", "In"), "values"),
    (expr("a", "Exists", "x"), "values"),
    ({"operator": "Exists"}, "key"),
])
def test_invalid_expressions_are_rejected(expression: dict, field: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_selector({"matchExpressions": [expression]}, "sel")
    assert err.value.field == f"sel.matchExpressions[0].{field}"


def test_non_string_label_value_is_rejected() -> None:
    with pytest.raises(SelectorError) as err:
        parse_selector({"matchLabels": {"a": 1}}, "sel")
    assert err.value.field == "sel.matchLabels[a]"


def test_keys_and_anchor_describe_what_the_selector_depends_on() -> None:
    sel = parse_selector({"matchLabels": {"app": "web"},
                          "matchExpressions": [expr("env", "DoesNotExist")]}, "s")
    assert sel.keys == {"app", "env"}
    assert sel.anchor == ("app", ("web",))
    negative = parse_selector({"matchExpressions": [expr("env", "NotIn", "x")]}, "s")
    assert negative.anchor is None  # may match pods without the key: no index anchor
