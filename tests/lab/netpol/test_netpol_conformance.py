"""Kubernetes NetworkPolicy conformance in the lab, after upstream's e2e netpol suite.

Every case starts from the model (x, y, z x a, b, c; TCP/UDP/SCTP 80/81; everything
connected), creates its policies, and asserts the whole 9 x 9 matrix for the TCP and
UDP (protocol, port) pairs (SCTP too in the cases that name it), retried until it
matches or the deadline passes; the fixture
then deletes the policies, restores the labels and waits for the bare model again.
Expected matrices are written by hand from default-allow plus explicit expectations.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from typing import Any

import pytest

from netpol.harness import NetpolCluster
from netpol.model import ALL_COMBOS, EVERY_COMBO, POD_KEYS, Combo
from netpol.reachability import Reachability

pytestmark = pytest.mark.lab

LABEL_CONVERGENCE_BUDGET = 2.0  # seconds, issue 5's criterion


def allow_all(combos: Iterable[Combo] = ALL_COMBOS) -> Reachability:
    return Reachability(POD_KEYS, combos=combos)


def sel(**labels: str) -> dict[str, Any]:
    return {"matchLabels": labels}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    e: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        e["values"] = list(values)
    return {"matchExpressions": [e]}


DENY_INGRESS: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress"]}
DENY_EGRESS: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Egress"]}


def ingress_to_xa(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"podSelector": sel(pod="a"), "policyTypes": ["Ingress"], "ingress": list(rules)}


def blocked_to_xa_except(*sources: str, combos: Iterable[Combo] = ALL_COMBOS
                         ) -> Reachability:
    r = allow_all(combos).expect("*", "x/a", ok=False)
    for src in sources:
        r.expect(src, "x/a", ok=True)
    return r


def converge(np: NetpolCluster, what: str, change: Any, reach: Reachability,
             budget: float | None = LABEL_CONVERGENCE_BUDGET) -> None:
    """Apply `change`, time until the first matching matrix, report and check it."""
    start = time.monotonic()
    change()
    done = np.expect(reach, what, since=start)
    np.note(f"{what}: converged within {done.within:.2f}s (matching round started "
            f"{done.at_least:.2f}s after the change, {done.rounds} round(s))")
    if budget is not None:
        assert done.within <= budget, (
            f"{what}: took {done.within:.2f}s to converge, budget {budget:.1f}s")


# -- no policy --------------------------------------------------------------------------

def test_without_policies_every_pod_reaches_every_pod_on_tcp_udp_and_sctp_80_81(np):
    r = allow_all(EVERY_COMBO)
    rounds = [np.expect(r, "no policy").round]
    # Steady state: no probe lost either (1 s: a loaded machine may be slow, not lossy).
    rounds += [np.probe_once(EVERY_COMBO, timeout=1.0) for _ in range(2)]
    for rnd in rounds[1:]:
        assert not r.mismatches(rnd.observed, rnd.errors), r.report(rnd.observed, rnd.errors)
    rtts = sorted(x for rnd in rounds for x in rnd.rtt_ms)
    probes = sum(len(t.cells()) for t in rounds[0].observed.values())
    np.note(f"full matrix (9x8 pairs x TCP/UDP/SCTP x 80/81 = {probes} probes): "
            f"{', '.join(f'{rnd.seconds:.3f}s' for rnd in rounds)} per round; "
            f"rtt median {rtts[len(rtts) // 2]:.1f} ms, max {rtts[-1]:.1f} ms")


def test_prober_sees_blocked_cells_and_times_an_instant_change(np):
    """Calibration of the suite's own instruments, with no policy involved: drop TCP/81
    and UDP/80 into x/a with iptables in its netns; the measured convergence of this
    instant change is the floor of every convergence figure."""
    netns = np.endpoints()["x/a"].netns
    rules = [["-p", "tcp", "--dport", "81", "-j", "DROP"],
             ["-p", "udp", "--dport", "80", "-j", "DROP"]]

    def iptables(op: str) -> None:
        for rule in rules:
            subprocess.run(["ip", "netns", "exec", netns, "iptables", op, "INPUT", *rule],
                           check=True, capture_output=True, timeout=30)

    r = (allow_all().expect("*", "x/a", ok=False, proto="tcp", port=81)
         .expect("*", "x/a", ok=False, proto="udp", port=80))
    try:
        converge(np, "calibration: iptables DROP in x/a (instant change)",
                 lambda: iptables("-A"), r)
    finally:
        iptables("-D")


# -- default deny / allow all -----------------------------------------------------------

def test_default_deny_ingress_isolates_every_pod_of_the_namespace(np):
    np.create_policy("x", "deny-ingress", DENY_INGRESS)
    np.expect(allow_all().expect("*", "x/*", ok=False), "default-deny-ingress in x")


def test_default_deny_egress_blocks_every_pod_of_the_namespace_from_sending(np):
    np.create_policy("x", "deny-egress", DENY_EGRESS)
    np.expect(allow_all().expect("x/*", "*", ok=False), "default-deny-egress in x")


def test_default_deny_all_blocks_both_directions(np):
    np.create_policy("x", "deny-all", {"podSelector": {},
                                       "policyTypes": ["Ingress", "Egress"]})
    r = allow_all().expect("*", "x/*", ok=False).expect("x/*", "*", ok=False)
    np.expect(r, "default-deny-all in x")


def test_allow_all_ingress_rule_reopens_a_pod_isolated_by_another_policy(np):
    np.create_policy("x", "deny-ingress", DENY_INGRESS)
    np.create_policy("x", "allow-all-to-a", ingress_to_xa({}))
    r = allow_all().expect("*", "x/*", ok=False).expect("*", "x/a", ok=True)
    np.expect(r, "deny-ingress in x + allow-all ingress to x/a")


def test_allow_all_egress_rule_reopens_a_pod_isolated_by_another_policy(np):
    np.create_policy("x", "deny-egress", DENY_EGRESS)
    np.create_policy("x", "allow-all-from-a", {
        "podSelector": sel(pod="a"), "policyTypes": ["Egress"], "egress": [{}]})
    r = allow_all().expect("x/*", "*", ok=False).expect("x/a", "*", ok=True)
    np.expect(r, "deny-egress in x + allow-all egress from x/a")


def test_ingress_allow_all_policy_takes_precedence_over_a_narrower_one(np):
    np.create_policy("x", "tcp-80-only", ingress_to_xa({"ports": [{"port": 80}]}))
    np.expect(blocked_to_xa_except().expect("*", "x/a", ok=True, proto="tcp", port=80),
              "x/a ingress TCP/80 only")
    converge(np, "ingress allow-all policy added next to a narrower one",
             lambda: np.create_policy("x", "allow-all", ingress_to_xa({})), allow_all(),
             budget=None)


def test_egress_allow_all_policy_takes_precedence_over_a_narrower_one(np):
    np.create_policy("x", "to-81-only", {"podSelector": sel(pod="a"), "policyTypes": ["Egress"],
                                         "egress": [{"ports": [{"port": 81}]}]})
    np.expect(allow_all().expect("x/a", "*", ok=False)
              .expect("x/a", "*", ok=True, proto="tcp", port=81), "x/a egress TCP/81 only")
    converge(np, "egress allow-all policy added next to a narrower one",
             lambda: np.create_policy("x", "allow-all", {
                 "podSelector": sel(pod="a"), "policyTypes": ["Egress"], "egress": [{}]}),
             allow_all(), budget=None)


# -- peers ------------------------------------------------------------------------------

def test_empty_pod_selector_peer_admits_only_the_policy_namespace(np):
    np.create_policy("x", "from-own-ns", {"podSelector": {}, "policyTypes": ["Ingress"],
                                          "ingress": [{"from": [{"podSelector": {}}]}]})
    np.expect(allow_all().expect("*", "x/*", ok=False).expect("x/*", "x/*", ok=True),
              "x/* ingress from x only")


def test_empty_namespace_selector_peer_admits_every_namespace(np):
    np.create_policy("x", "deny-ingress", DENY_INGRESS)
    np.create_policy("x", "from-all-ns", ingress_to_xa({"from": [{"namespaceSelector": {}}]}))
    np.expect(allow_all().expect("*", "x/*", ok=False).expect("*", "x/a", ok=True),
              "deny-ingress in x + x/a ingress from every namespace")

def test_pod_selector_admits_only_the_selected_pods_of_the_policy_namespace(np):
    np.create_policy("x", "from-b", ingress_to_xa({"from": [{"podSelector": sel(pod="b")}]}))
    np.expect(blocked_to_xa_except("x/b"), "x/a ingress from podSelector pod=b")


def test_namespace_selector_admits_every_pod_of_the_selected_namespaces(np):
    np.create_policy("x", "from-y", ingress_to_xa(
        {"from": [{"namespaceSelector": sel(ns="y")}]}))
    np.expect(blocked_to_xa_except("y/*"), "x/a ingress from namespaceSelector ns=y")


def test_pod_and_namespace_selector_in_one_peer_admit_their_intersection(np):
    np.create_policy("x", "from-y-b", ingress_to_xa(
        {"from": [{"namespaceSelector": sel(ns="y"), "podSelector": sel(pod="b")}]}))
    np.expect(blocked_to_xa_except("y/b"), "x/a ingress from ns=y AND pod=b")


def test_pod_or_namespace_selector_as_two_peers_admit_their_union(np):
    np.create_policy("x", "from-y-or-b", ingress_to_xa(
        {"from": [{"namespaceSelector": sel(ns="y")}, {"podSelector": sel(pod="b")}]}))
    np.expect(blocked_to_xa_except("y/*", "x/b"), "x/a ingress from ns=y OR pod=b")


def test_any_pod_in_any_namespace_peer_admits_everyone_but_keeps_port_limits(np):
    np.create_policy("x", "any-on-80", ingress_to_xa(
        {"from": [{"namespaceSelector": {}, "podSelector": {}}],
         "ports": [{"port": 80, "protocol": "TCP"}]}))
    r = blocked_to_xa_except().expect("*", "x/a", ok=True, proto="tcp", port=80)
    np.expect(r, "x/a ingress from every pod, TCP/80 only")


@pytest.mark.parametrize("selector, admitted", [
    ({"podSelector": expr("pod", "In", "b")}, ["x/b"]),
    ({"podSelector": expr("pod", "NotIn", "a", "b")}, ["x/c"]),
    ({"namespaceSelector": expr("ns", "In", "y", "z")}, ["y/*", "z/*"]),
    ({"namespaceSelector": expr("ns", "NotIn", "x")}, ["y/*", "z/*"]),
    ({"podSelector": expr("role", "Exists")}, ["x/b"]),
    ({"podSelector": expr("role", "DoesNotExist")}, ["x/c"]),
    ({"namespaceSelector": expr("kubernetes.io/metadata.name", "In", "z")}, ["z/*"]),
    ({"namespaceSelector": expr("ns", "NotIn", "x"), "podSelector": expr("pod", "In", "a", "b")},
     ["y/a", "y/b", "z/a", "z/b"]),
], ids=["pod-In", "pod-NotIn", "ns-In", "ns-NotIn", "pod-Exists", "pod-DoesNotExist",
        "ns-default-name-label", "ns-NotIn-and-pod-In"])
def test_match_expressions_select_peers(np, selector, admitted):
    np.label_pod("x/b", {"role": "peer"})  # only x/b carries the key
    np.create_policy("x", "exprs", ingress_to_xa({"from": [selector]}))
    np.expect(blocked_to_xa_except(*admitted), f"x/a ingress from {selector}")


def test_match_expressions_select_the_pods_a_policy_applies_to(np):
    np.label_pod("x/b", {"role": "guarded"})
    np.create_policy("x", "guard", {"podSelector": expr("role", "Exists"),
                                    "policyTypes": ["Ingress"]})
    np.create_policy("y", "guard-none", {"podSelector": expr("pod", "NotIn", "a", "b", "c"),
                                         "policyTypes": ["Ingress"]})
    np.expect(allow_all().expect("*", "x/b", ok=False),
              "deny ingress to pods with key role; a selector matching no pod changes nothing")


# -- ports and protocols ----------------------------------------------------------------

def test_ports_only_rule_admits_anyone_on_that_port_and_protocol(np):
    np.create_policy("x", "tcp-81", ingress_to_xa({"ports": [{"port": 81, "protocol": "TCP"}]}))
    r = blocked_to_xa_except().expect("*", "x/a", ok=True, proto="tcp", port=81)
    np.expect(r, "x/a ingress TCP/81 from anyone")


def test_named_ports_resolve_to_the_destination_pods_container_ports(np):
    np.create_policy("x", "named", {
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"port": "serve-80-tcp"},
                               {"port": "serve-81-udp", "protocol": "UDP"}]}]})
    r = (allow_all().expect("*", "x/*", ok=False)
         .expect("*", "x/*", ok=True, proto="tcp", port=80)
         .expect("*", "x/*", ok=True, proto="udp", port=81))
    np.expect(r, "x/* ingress on named ports serve-80-tcp, serve-81-udp")


def test_named_port_from_a_namespace_admits_only_that_namespace_on_that_port(np):
    np.create_policy("x", "y-on-named", ingress_to_xa(
        {"from": [{"namespaceSelector": sel(ns="y")}],
         "ports": [{"port": "serve-81-udp", "protocol": "UDP"}]}))
    r = blocked_to_xa_except().expect("y/*", "x/a", ok=True, proto="udp", port=81)
    np.expect(r, "x/a ingress from y on named port serve-81-udp")


def test_named_port_in_egress_rule_is_resolved_on_the_peer(np):
    np.create_policy("x", "egress-named", {
        "podSelector": sel(pod="a"), "policyTypes": ["Egress"],
        "egress": [{"ports": [{"port": "serve-81-tcp"}]}]})
    r = (allow_all().expect("x/a", "*", ok=False)
         .expect("x/a", "*", ok=True, proto="tcp", port=81))
    np.expect(r, "x/a egress to named port serve-81-tcp")


@pytest.mark.parametrize("port, end_port, open_ports", [
    (80, 81, [80, 81]),
    (81, 90, [81]),
], ids=["80-81", "81-90"])
def test_end_port_admits_the_whole_range(np, port, end_port, open_ports):
    np.create_policy("x", "range", ingress_to_xa(
        {"ports": [{"port": port, "endPort": end_port, "protocol": "TCP"}]}))
    r = blocked_to_xa_except()
    for p in open_ports:
        r.expect("*", "x/a", ok=True, proto="tcp", port=p)
    np.expect(r, f"x/a ingress TCP {port}-{end_port}")


def test_udp_only_rule_does_not_admit_tcp(np):
    np.create_policy("x", "udp-any-port", ingress_to_xa({"ports": [{"protocol": "UDP"}]}))
    r = blocked_to_xa_except().expect("*", "x/a", ok=True, proto="udp")
    np.expect(r, "x/a ingress UDP on any port")


def test_an_sctp_rule_admits_sctp_80_only(np):
    np.create_policy("x", "sctp-80", ingress_to_xa({"ports": [{"port": 80, "protocol": "SCTP"}]}))
    r = blocked_to_xa_except(combos=EVERY_COMBO).expect("*", "x/a", ok=True, proto="sctp",
                                                         port=80)
    np.expect(r, "x/a ingress SCTP/80 only: TCP, UDP and SCTP/81 blocked")


def test_udp_81_rule_admits_only_udp_81(np):
    np.create_policy("x", "udp-81", ingress_to_xa({"ports": [{"port": 81, "protocol": "UDP"}]}))
    r = blocked_to_xa_except().expect("*", "x/a", ok=True, proto="udp", port=81)
    np.expect(r, "x/a ingress UDP/81")


# -- ipBlock ----------------------------------------------------------------------------

def test_egress_ip_block_with_except_blocks_the_excepted_pod_ips(np):
    yb, zc = np.ip("y/b"), np.ip("z/c")
    np.create_policy("x", "cidr-except", {
        "podSelector": sel(pod="a"), "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                        "except": [f"{yb}/32", f"{zc}/32"]}}]}]})
    r = allow_all().expect("x/a", "y/b", ok=False).expect("x/a", "z/c", ok=False)
    np.expect(r, f"x/a egress to 10.244.0.0/16 except y/b {yb}, z/c {zc}")


def test_an_ip_excepted_by_one_block_but_allowed_by_another_is_allowed(np):
    yb, zc = np.ip("y/b"), np.ip("z/c")
    np.create_policy("x", "overlap", {
        "podSelector": sel(pod="a"), "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                        "except": [f"{yb}/32", f"{zc}/32"]}},
                           {"ipBlock": {"cidr": f"{yb}/32"}}]}]})
    np.expect(allow_all().expect("x/a", "z/c", ok=False),
              "x/a egress: y/b excepted by one block, allowed by another")


def test_ingress_ip_block_admits_only_the_listed_pod_ips(np):
    ya, zb = np.ip("y/a"), np.ip("z/b")
    np.create_policy("x", "from-cidrs", ingress_to_xa(
        {"from": [{"ipBlock": {"cidr": f"{ya}/32"}}, {"ipBlock": {"cidr": f"{zb}/32"}}]}))
    np.expect(blocked_to_xa_except("y/a", "z/b"), f"x/a ingress from {ya}/32, {zb}/32")


# -- egress and policyTypes -------------------------------------------------------------

def test_egress_to_a_pod_of_another_namespace_on_one_port(np):
    np.create_policy("x", "to-y-b-80", {
        "podSelector": sel(pod="a"), "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": sel(ns="y"), "podSelector": sel(pod="b")}],
                    "ports": [{"port": 80, "protocol": "TCP"}]}]})
    r = allow_all().expect("x/a", "*", ok=False).expect("x/a", "y/b", ok=True, proto="tcp",
                                                        port=80)
    np.expect(r, "x/a egress only to y/b TCP/80")


def test_egress_denied_on_the_client_even_when_the_server_allows_it(np):
    np.create_policy("x", "deny-egress-a", {"podSelector": sel(pod="a"),
                                            "policyTypes": ["Egress"]})
    np.create_policy("y", "allow-from-x-a", {
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": sel(ns="x"), "podSelector": sel(pod="a")}]}]})
    r = allow_all().expect("x/a", "*", ok=False).expect("*", "y/*", ok=False)
    np.expect(r, "x/a egress denied; y admits only x/a")


def test_policy_types_ingress_and_egress_with_only_ingress_rules_denies_all_egress(np):
    np.create_policy("x", "both-types", {
        "podSelector": sel(pod="a"), "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {}}]}]})
    r = allow_all().expect("x/a", "*", ok=False).expect("*", "x/a", ok=False)
    r.expect("x/*", "x/a", ok=True)
    np.expect(r, "x/a: Ingress+Egress types, ingress from x only, no egress rule")


def test_ingress_and_egress_of_different_pods_are_controlled_independently(np):
    np.create_policy("x", "a-egress-to-b", {
        "podSelector": sel(pod="a"), "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": sel(pod="b")}]}]})
    np.create_policy("x", "b-ingress-from-c", {
        "podSelector": sel(pod="b"), "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": sel(pod="c")}]}]})
    # x/a may only send to x/b, but x/b only admits x/c: x/a reaches nobody.
    r = allow_all().expect("x/a", "*", ok=False).expect("*", "x/b", ok=False)
    r.expect("x/c", "x/b", ok=True)
    np.expect(r, "x/a egress to x/b; x/b ingress from x/c")


# -- several policies, updates, deletion ------------------------------------------------

def test_policies_selecting_the_same_pod_add_up(np):
    np.create_policy("x", "from-b", ingress_to_xa({"from": [{"podSelector": sel(pod="b")}]}))
    np.create_policy("x", "from-z-81", ingress_to_xa(
        {"from": [{"namespaceSelector": sel(ns="z")}], "ports": [{"port": 81}]}))
    r = blocked_to_xa_except("x/b").expect("z/*", "x/a", ok=True, proto="tcp", port=81)
    np.expect(r, "x/a: from x/b (all ports) + from z on TCP/81")


def test_a_policy_updated_in_place_replaces_its_rules(np):
    np.create_policy("x", "from-ns", ingress_to_xa({"from": [{"namespaceSelector": sel(ns="y")}]}))
    np.expect(blocked_to_xa_except("y/*"), "x/a ingress from y")
    converge(np, "policy updated in place (from y -> from z)",
             lambda: np.replace_policy("x", "from-ns", ingress_to_xa(
                 {"from": [{"namespaceSelector": sel(ns="z")}]})),
             blocked_to_xa_except("z/*"), budget=None)


def test_deleting_the_policy_reopens_the_pods(np):
    np.create_policy("x", "deny-all", {"podSelector": {},
                                       "policyTypes": ["Ingress", "Egress"]})
    np.expect(allow_all().expect("*", "x/*", ok=False).expect("x/*", "*", ok=False),
              "default-deny-all in x")
    converge(np, "policy deleted", lambda: np.delete_policy("x", "deny-all"), allow_all(),
             budget=None)


# -- label changes after the fact -------------------------------------------------------

def test_pod_label_added_after_the_policy_makes_the_pod_a_peer(np):
    np.create_policy("x", "from-peers", ingress_to_xa(
        {"from": [{"namespaceSelector": {}, "podSelector": sel(role="peer")}]}))
    np.expect(blocked_to_xa_except(), "x/a ingress from role=peer (none yet)")
    converge(np, "pod label added (z/c role=peer)",
             lambda: np.label_pod("z/c", {"role": "peer"}), blocked_to_xa_except("z/c"))


def test_pod_label_removed_after_the_policy_drops_the_peer(np):
    np.label_pod("y/b", {"role": "peer"})
    np.create_policy("x", "from-peers", ingress_to_xa(
        {"from": [{"namespaceSelector": {}, "podSelector": sel(role="peer")}]}))
    np.expect(blocked_to_xa_except("y/b"), "x/a ingress from role=peer (y/b)")
    converge(np, "pod label removed (y/b role)",
             lambda: np.label_pod("y/b", {"role": None}), blocked_to_xa_except())


def test_namespace_label_changed_after_the_policy_admits_its_pods(np):
    np.create_policy("x", "from-blue", ingress_to_xa(
        {"from": [{"namespaceSelector": sel(team="blue")}]}))
    np.expect(blocked_to_xa_except(), "x/a ingress from team=blue namespaces (none yet)")
    converge(np, "namespace label added (y team=blue)",
             lambda: np.label_namespace("y", {"team": "blue"}), blocked_to_xa_except("y/*"))
    converge(np, "namespace label moved (y -> z team=blue)",
             lambda: (np.label_namespace("y", {"team": None}),
                      np.label_namespace("z", {"team": "blue"})),
             blocked_to_xa_except("z/*"))


def test_pod_label_changes_move_a_pod_in_and_out_of_the_policy_it_applies_to(np):
    np.create_policy("x", "isolate", {"podSelector": sel(isolated="true"),
                                      "policyTypes": ["Ingress"]})
    np.expect(allow_all(), "policy selecting no pod yet")
    converge(np, "applied-to label added (x/b isolated=true)",
             lambda: np.label_pod("x/b", {"isolated": "true"}),
             allow_all().expect("*", "x/b", ok=False))
    converge(np, "applied-to label removed (x/b)",
             lambda: np.label_pod("x/b", {"isolated": None}), allow_all())


# -- pods created after the policy ------------------------------------------------------

def test_a_pod_created_after_the_policies_is_isolated_and_admitted_as_a_peer(np):
    np.create_policy("x", "isolate-c", {"podSelector": sel(pod="c"),
                                        "policyTypes": ["Ingress"]})
    np.create_policy("y", "from-x-c", {
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": sel(ns="x"), "podSelector": sel(pod="c")}]}]})
    r = allow_all().expect("*", "x/c", ok=False).expect("*", "y/*", ok=False)
    r.expect("x/c", "y/*", ok=True)
    np.expect(r, "x/c isolated; y admits only x/c")
    old_netns = np.endpoints()["x/c"].netns
    converge(np, "pod x/c recreated under existing policies (incl. pod start)",
             lambda: np.recreate_pod("x/c"), r, budget=None)
    assert np.endpoints()["x/c"].netns != old_netns  # the matrix was probed from the new pod
