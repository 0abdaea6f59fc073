"""The suite's own machinery (no lab): expectations, comparison and the diff."""

from __future__ import annotations

import pytest

from netpol.model import ALL_COMBOS, PLACEMENT, POD_KEYS, pod_manifest
from netpol.reachability import Reachability
from netpol.truthtable import TruthTable

pytestmark = pytest.mark.unit


def observed_all(value: bool) -> dict:
    return {combo: TruthTable(POD_KEYS, value) for combo in ALL_COMBOS}


def test_model_spreads_every_namespace_over_every_node():
    for ns in "xyz":
        assert {PLACEMENT[f"{ns}/{p}"] for p in "abc"} == {"node1", "node2", "node3"}
    for node in ("node1", "node2", "node3"):
        assert {k[0] for k, n in PLACEMENT.items() if n == node} == {"x", "y", "z"}


def test_model_pods_name_their_ports_like_upstream():
    ports = pod_manifest("y/b")["spec"]["containers"][0]["ports"]
    assert {(p["name"], p["containerPort"], p["protocol"]) for p in ports} == {
        ("serve-80-tcp", 80, "TCP"), ("serve-80-udp", 80, "UDP"),
        ("serve-80-sctp", 80, "SCTP"), ("serve-81-tcp", 81, "TCP"),
        ("serve-81-udp", 81, "UDP"), ("serve-81-sctp", 81, "SCTP")}


def test_later_expectations_override_earlier_ones_per_combo():
    r = Reachability(POD_KEYS).expect("*", "x/a", ok=False)
    r.expect("y/*", "x/a", ok=True, proto="udp", port=81)
    udp81, tcp80 = r.expected[("udp", 81)], r.expected[("tcp", 80)]
    assert udp81.get("y/c", "x/a") is True and udp81.get("z/c", "x/a") is False
    assert tcp80.get("y/c", "x/a") is False
    assert tcp80.get("y/c", "x/b") is True


def test_wildcard_pod_pattern_matches_that_pod_in_every_namespace():
    r = Reachability(POD_KEYS).expect("*/b", "*", ok=False)
    table = r.expected[("tcp", 80)]
    assert [s for s in POD_KEYS if table.get(s, "x/a") is False] == ["x/b", "y/b", "z/b"]


def test_a_pattern_matching_no_pod_is_an_error():
    with pytest.raises(ValueError):
        Reachability(POD_KEYS).expect("w/*", "*", ok=False)
    with pytest.raises(ValueError):
        Reachability(POD_KEYS).expect("x", "*", ok=False)


def test_a_pod_to_itself_is_never_compared():
    r = Reachability(POD_KEYS)
    seen = observed_all(True)
    for combo in ALL_COMBOS:
        seen[combo].set("x/a", "x/a", False)
    assert r.mismatches(seen) == []


def test_mismatches_name_the_cells_and_the_report_shows_the_three_tables():
    r = Reachability(POD_KEYS).expect("*", "x/a", ok=False)
    seen = observed_all(True)
    errors = {(("udp", 80), "z/c", "x/a"): "timeout"}
    wrong = r.mismatches(seen, errors)
    assert len(wrong) == 8 * len(ALL_COMBOS)
    assert {(m.src, m.dst) for m in wrong} == {(s, "x/a") for s in POD_KEYS if s != "x/a"}
    report = r.report(seen, errors)
    assert report.count("expected:") == len(ALL_COMBOS)
    assert "TCP/80: 8 cell(s) differ" in report
    assert "tcp/80 x/b -> x/a: expected blocked, observed connected" in report
    # the comparison table marks exactly column x/a
    comparison = report.split("comparison ('X' = differs):\n")[1].split("\n\n")[0]
    rows = comparison.splitlines()[1:]
    assert all(row.split()[1] in ("X", "-") and "X" not in row.split()[2:] for row in rows)


def test_a_missing_observation_is_a_mismatch():
    r = Reachability(POD_KEYS, combos=[("tcp", 80)])
    assert len(r.mismatches({})) == 72
