"""Incremental behaviour: spans follow pods, indexes narrow re-evaluation, groups are
shared and deleted when unreferenced, and batches publish each object once."""

from __future__ import annotations

import pytest
from netpol_objects import RecordingStore, labels, namespace, pod, policy

from antrea_core.apis.controlplane import ObjectKind
from antrea_core.controller.networkpolicy import NetworkPolicyController

pytestmark = pytest.mark.unit

ATG, AG, NP = ObjectKind.APPLIED_TO_GROUP, ObjectKind.ADDRESS_GROUP, ObjectKind.NETWORK_POLICY


def db_policy(name: str = "db", ns: str = "a", peer: dict | None = None) -> dict:
    return policy(ns, name, labels(app="db"),
                  ingress=[{"from": [peer or {"podSelector": labels(app="web")}]}])


def test_spans_follow_pods_added_moved_and_deleted(ctl: NetworkPolicyController,
                                                   store: RecordingStore) -> None:
    ctl.add_network_policy(db_policy())
    np, span = store.policy("db")
    assert span == frozenset()
    ag_name = np.rules[0].peer.address_groups[0]
    ctl.add_pod(pod("a", "db1", "10.0.0.1", "n1", {"app": "db"}))
    ctl.add_pod(pod("a", "db2", "10.0.0.2", "n2", {"app": "db"}))
    ctl.add_pod(pod("a", "web", "10.0.0.3", "n3", {"app": "web"}))
    assert store.policy("db")[1] == {"n1", "n2"}
    assert store.atg(np.applied_to_groups[0])[1] == {"n1", "n2"}
    # The address group's span is the policy's, not the nodes of its own members.
    assert store.ag(ag_name)[1] == {"n1", "n2"}
    # db2 is recreated on n4 (same name, new node and IP).
    ctl.update_pod(pod("a", "db2", "10.0.4.2", "n4", {"app": "db"}))
    assert store.policy("db")[1] == {"n1", "n4"}
    assert store.ag(ag_name)[1] == {"n1", "n4"}
    ips = {m.ips[0] for m in store.atg(np.applied_to_groups[0])[0].members}
    assert ips == {"10.0.0.1", "10.0.4.2"}
    ctl.delete_pod(pod("a", "db1"))
    assert store.policy("db")[1] == {"n4"}
    assert store.ag(ag_name)[1] == {"n4"}


def test_member_moves_without_span_change_republish_only_the_group(
        ctl: NetworkPolicyController, store: RecordingStore) -> None:
    ctl.add_pod(pod("a", "db1", "10.0.0.1", "n1", {"app": "db"}))
    ctl.add_network_policy(db_policy())
    store.reset_calls()
    ctl.add_pod(pod("a", "db2", "10.0.0.2", "n1", {"app": "db"}))  # same node: same span
    assert [(op, kind) for op, kind, _ in store.calls] == [("upsert", ATG)]


def test_members_are_interned_across_groups(ctl: NetworkPolicyController,
                                            store: RecordingStore) -> None:
    ctl.add_pod(pod("a", "x", labels={"app": "db", "tier": "t"}))
    ctl.add_network_policy(db_policy())
    ctl.add_network_policy(policy("a", "t", labels(tier="t"),
                                  ingress=[{"from": [{"podSelector": labels(app="db")}]}]))
    (m1,) = store.atg(store.policy("db")[0].applied_to_groups[0])[0].members
    (m2,) = store.atg(store.policy("t")[0].applied_to_groups[0])[0].members
    (m3,) = store.ag(store.policy("t")[0].rules[0].peer.address_groups[0])[0].members
    assert m1 is m2 is m3
    # A label change that keeps IP/node/ports keeps the member object.
    ctl.update_pod(pod("a", "x", labels={"app": "db", "tier": "t", "new": "1"}))
    (m4,) = store.atg(store.policy("db")[0].applied_to_groups[0])[0].members
    assert m4 is m1


def test_pod_label_change_reevaluates_only_groups_mentioning_the_key(
        ctl: NetworkPolicyController, store: RecordingStore) -> None:
    with ctl.batch():
        for i in range(20):
            ctl.add_network_policy(policy("a", f"p{i}", labels(**{f"k{i}": "v"})))
        ctl.add_network_policy(policy("a", "env", {"matchExpressions": [
            {"key": "k0", "operator": "NotIn", "values": ["prod"]}]}))
        ctl.add_pod(pod("a", "x", labels={"k0": "v", "other": "1"}))
    assert store.atg_pods("p0") == {"a/x"} and store.atg_pods("env") == {"a/x"}
    before = ctl.index.evaluations
    ctl.update_pod(pod("a", "x", labels={"k0": "v", "other": "2"}))
    assert ctl.index.evaluations == before  # no group mentions "other"
    ctl.update_pod(pod("a", "x", labels={"k0": "v", "k5": "zzz"}))
    # k5 appeared but no selector lists k5=zzz: nothing to re-evaluate.
    assert ctl.index.evaluations == before
    ctl.update_pod(pod("a", "x", labels={"k0": "prod", "k5": "zzz"}))
    assert ctl.index.evaluations == before + 2  # p0 (lists k0=v) and env (k0 NotIn)
    assert store.atg_pods("p0") == set() and store.atg_pods("env") == set()
    ctl.update_pod(pod("a", "x", labels={"k0": "prod", "k7": "v", "k5": "zzz"}))
    assert ctl.index.evaluations == before + 3
    assert store.atg_pods("p7") == {"a/x"}


def test_new_pod_is_evaluated_only_against_candidate_groups(ctl: NetworkPolicyController,
                                                            store: RecordingStore) -> None:
    with ctl.batch():
        for i in range(50):
            ctl.add_network_policy(policy("a", f"p{i}", labels(app=f"v{i}")))
            ctl.add_network_policy(policy("b", f"q{i}", labels(app=f"v{i}")))
        ctl.add_network_policy(policy("a", "all", None))
    before = ctl.index.evaluations
    ctl.add_pod(pod("a", "x", labels={"unrelated": "1"}))
    assert ctl.index.evaluations == before + 1  # only the match-all group of namespace a
    ctl.add_pod(pod("a", "y", labels={"app": "v3"}))
    # Only the group for app=v3 plus the match-all one: not the 49 other app=… groups of
    # namespace a, nor any group of namespace b.
    assert ctl.index.evaluations == before + 1 + 2
    assert store.atg_pods("p3") == {"a/y"}


def test_namespace_label_change_moves_its_pods_in_and_out(ctl: NetworkPolicyController,
                                                          store: RecordingStore) -> None:
    with ctl.batch():
        ctl.add_namespace(namespace("a"))
        ctl.add_namespace(namespace("b", team="blue"))
        ctl.add_namespace(namespace("c", team="red"))
        ctl.add_pod(pod("a", "db", "10.0.0.1", "n1", {"app": "db"}))
        ctl.add_pod(pod("b", "web", "10.0.0.2", "n2", {"app": "web"}))
        ctl.add_pod(pod("c", "web", "10.0.0.3", "n3", {"app": "web"}))
        ctl.add_network_policy(db_policy(peer={"namespaceSelector": labels(team="blue"),
                                               "podSelector": labels(app="web")}))
        ctl.add_network_policy(policy("a", "other", None, ingress=[{"from": [
            {"namespaceSelector": labels(zone="z1")}]}]))
    assert store.peer_pods("db") == {"b/web"}
    before = ctl.index.evaluations
    ctl.update_namespace(namespace("c", team="blue"))
    assert store.peer_pods("db") == {"b/web", "c/web"}
    ctl.update_namespace(namespace("b", team="green"))
    assert store.peer_pods("db") == {"c/web"}
    # Only the group whose namespace selector mentions "team" was re-evaluated (once per
    # change) plus, when c started to match, c's one app=web pod; the "zone" group never.
    assert ctl.index.evaluations - before == 3
    ctl.delete_namespace(namespace("c"))
    assert store.peer_pods("db") == set()


def test_namespace_name_label_is_implicit(ctl: NetworkPolicyController,
                                          store: RecordingStore) -> None:
    ctl.add_namespace(namespace("a"))
    ctl.add_namespace(namespace("b"))
    ctl.add_pod(pod("b", "web", labels={"app": "web"}))
    ctl.add_network_policy(policy("a", "p", None, ingress=[{"from": [
        {"namespaceSelector": labels(**{"kubernetes.io/metadata.name": "b"})}]}]))
    assert store.peer_pods("p") == {"b/web"}


def test_identical_selectors_share_groups(ctl: NetworkPolicyController,
                                          store: RecordingStore) -> None:
    ctl.add_pod(pod("a", "db", "10.0.0.1", "n1", {"app": "db"}))
    ctl.add_pod(pod("a", "cache", "10.0.0.2", "n2", {"app": "cache"}))
    ctl.add_network_policy(db_policy("one"))
    ctl.add_network_policy(policy("a", "two", {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["db"]}]}, ingress=[{"from": [
            {"podSelector": labels(app="web")}]}]))
    ctl.add_network_policy(policy("a", "three", labels(app="cache"),
                                  ingress=[{"from": [{"podSelector": labels(app="web")}]}]))
    one, two, three = (store.policy(n)[0] for n in ("one", "two", "three"))
    assert one.applied_to_groups == two.applied_to_groups != three.applied_to_groups
    ag = one.rules[0].peer.address_groups
    assert ag == two.rules[0].peer.address_groups == three.rules[0].peer.address_groups
    assert len(store.of_kind(ATG)) == 2 and len(store.of_kind(AG)) == 1
    # The shared address group goes to every node of every policy using it.
    assert store.ag(ag[0])[1] == {"n1", "n2"}
    # Same selector in another namespace is another group.
    ctl.add_network_policy(db_policy("four", ns="b"))
    assert store.policy("four")[0].applied_to_groups != one.applied_to_groups


def test_unreferenced_groups_are_deleted(ctl: NetworkPolicyController,
                                         store: RecordingStore) -> None:
    ctl.add_pod(pod("a", "db", "10.0.0.1", "n1", {"app": "db"}))
    ctl.add_network_policy(db_policy("one"))
    ctl.add_network_policy(db_policy("two"))
    np = store.policy("one")[0]
    atg, ag = np.applied_to_groups[0], np.rules[0].peer.address_groups[0]
    ctl.delete_network_policy(policy("a", "one"))
    assert (ATG, atg) in store.objects and (AG, ag) in store.objects
    assert (NP, np.name) not in store.objects
    ctl.delete_network_policy(policy("a", "two"))
    assert store.objects == {}
    assert len(ctl.index) == 0
    # Re-adding computes the same (stable) group names again.
    ctl.add_network_policy(db_policy("one"))
    assert store.policy("one")[0].applied_to_groups == (atg,)
    assert store.atg_pods("one") == {"a/db"}


def test_policy_update_swaps_groups_and_republishes(ctl: NetworkPolicyController,
                                                    store: RecordingStore) -> None:
    ctl.add_pod(pod("a", "db", "10.0.0.1", "n1", {"app": "db"}))
    ctl.add_pod(pod("a", "web", "10.0.0.2", "n2", {"app": "web"}))
    ctl.add_network_policy(db_policy())
    old = store.policy("db")[0]
    store.reset_calls()
    ctl.update_network_policy(policy("a", "db", labels(app="web"), ingress=[{"from": [
        {"podSelector": labels(app="db")}]}]))
    new, span = store.policy("db")
    assert new.name == old.name and span == {"n2"}
    assert store.atg_pods("db") == {"a/web"} and store.peer_pods("db") == {"a/db"}
    assert ("delete", ATG, old.applied_to_groups[0]) in store.calls
    assert ("delete", AG, old.rules[0].peer.address_groups[0]) in store.calls
    # Deletions come after the policy stopped referencing the groups.
    assert store.calls.index(("upsert", NP, new.name)) < store.calls.index(
        ("delete", ATG, old.applied_to_groups[0]))


def test_unchanged_policy_update_publishes_nothing(ctl: NetworkPolicyController,
                                                   store: RecordingStore) -> None:
    ctl.add_pod(pod("a", "db", labels={"app": "db"}))
    ctl.add_network_policy(db_policy())
    store.reset_calls()
    ctl.update_network_policy(db_policy())
    assert store.calls == []


def test_recreated_policy_with_new_uid_replaces_the_old_one(ctl: NetworkPolicyController,
                                                            store: RecordingStore) -> None:
    ctl.add_network_policy(policy("a", "p", uid="u1"))
    ctl.update_network_policy(policy("a", "p", uid="u2"))
    assert [name for (kind, name) in store.objects if kind == NP] == ["u2"]


def test_batch_publishes_each_object_once(ctl: NetworkPolicyController,
                                          store: RecordingStore) -> None:
    with ctl.batch():
        ctl.add_namespace(namespace("a"))
        for i in range(30):
            ctl.add_pod(pod("a", f"db{i}", f"10.0.0.{i}", f"n{i % 4}", {"app": "db"}))
            ctl.add_pod(pod("a", f"web{i}", f"10.0.1.{i}", f"n{i % 5}", {"app": "web"}))
        for i in range(10):
            ctl.add_network_policy(db_policy(f"p{i}"))
        assert store.calls == []
    assert len(store.upserts(NP)) == 10
    assert len(store.upserts(ATG)) == 1 and len(store.upserts(AG)) == 1
    assert store.policy("p3")[1] == {"n0", "n1", "n2", "n3"}
    assert len(store.atg(store.policy("p3")[0].applied_to_groups[0])[0].members) == 30


def test_pods_of_a_namespace_seen_late_join_namespace_selected_groups(
        ctl: NetworkPolicyController, store: RecordingStore) -> None:
    ctl.add_pod(pod("b", "web", labels={"app": "web"}))
    ctl.add_network_policy(db_policy(peer={"namespaceSelector": labels(team="blue")}))
    assert store.peer_pods("db") == set()  # namespace b not known yet
    ctl.add_namespace(namespace("b", team="blue"))
    assert store.peer_pods("db") == {"b/web"}


def test_delete_and_readd_in_one_batch_keeps_groups(ctl: NetworkPolicyController,
                                                    store: RecordingStore) -> None:
    ctl.add_pod(pod("a", "db", labels={"app": "db"}))
    ctl.add_network_policy(db_policy())
    before = dict(store.objects)
    store.reset_calls()
    with ctl.batch():
        ctl.delete_network_policy(db_policy())
        ctl.add_network_policy(db_policy())
    assert store.objects == before
    assert not any(op == "delete" and kind != NP for op, kind, _ in store.calls)
