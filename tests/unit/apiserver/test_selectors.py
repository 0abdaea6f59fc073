"""Label and field selector parsing."""

from __future__ import annotations

import pytest

from antrea_lab.apiserver.errors import APIError
from antrea_lab.apiserver.selectors import parse_field_selector, parse_label_selector

pytestmark = pytest.mark.unit


def obj(labels, **extra):
    return {"metadata": {"name": "n", "namespace": "ns", "labels": labels}, **extra}


@pytest.mark.parametrize("selector,labels,expected", [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "db"}, False),
    ("app!=web", {}, True),
    ("env in (a, b)", {"env": "b"}, True),
    ("env notin (a,b)", {"env": "a"}, False),
    ("env notin (a,b)", {}, True),
    ("legacy", {"legacy": ""}, True),
    ("!legacy", {"legacy": ""}, False),
    ("app=web,env in (a,b),!legacy", {"app": "web", "env": "a"}, True),
    ("example.com/tier=front", {"example.com/tier": "front"}, True),
])
def test_label_selector_operators(selector, labels, expected):
    pred = parse_label_selector(selector)
    assert pred is not None
    assert pred(obj(labels)) is expected


def test_field_selector_pins_name_and_matches_nested_fields():
    pred, pinned = parse_field_selector("metadata.name=n,spec.nodeName=node1", "pods")
    assert pinned == "n"
    assert pred(obj({}, spec={"nodeName": "node1"}))
    assert not pred(obj({}, spec={"nodeName": "node2"}))
    pred, _ = parse_field_selector("status.phase!=Running", "pods")
    assert pred(obj({}, status={"phase": "Pending"}))


def test_unsupported_field_is_a_bad_request_naming_it():
    with pytest.raises(APIError) as e:
        parse_field_selector("spec.nodeName=x", "configmaps")
    assert e.value.code == 400 and "spec.nodeName" in e.value.message
