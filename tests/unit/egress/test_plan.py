"""What a Node must do for Egress (`antrea_egress.model.plan`), from API objects."""

from __future__ import annotations

import pytest

from antrea_core.apis.egress import Egress, ExternalIPPool
from antrea_egress.election import owner
from antrea_egress.model import NodeRecord, PodRecord, plan

pytestmark = pytest.mark.unit

NODES = {name: NodeRecord(name, labels, ip) for name, labels, ip in (
    ("n1", {}, "192.168.1.1"),
    ("n2", {"egress": "yes"}, "192.168.1.2"),
    ("n3", {"egress": "yes"}, "192.168.1.3"))}
NAMESPACES = {"prod": {"env": "prod"}, "dev": {"env": "dev"}}
POOL = ExternalIPPool.from_obj({
    "metadata": {"name": "pool"},
    "spec": {"ipRanges": [{"start": "10.10.0.2", "end": "10.10.0.9"}],
             "nodeSelector": {"matchLabels": {"egress": "yes"}}}})


def pod(name: str, node: str, ip: str, ns: str = "prod", **labels: str) -> PodRecord:
    record = PodRecord.from_obj({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node}, "status": {"phase": "Running", "podIPs": [{"ip": ip}]}})
    assert record is not None
    return record


def egress(name: str, created: str = "2026-01-01T00:00:00Z", *, ip: str = "",
           pool: str = "", pods: dict | None = None, namespaces: dict | None = None,
           status: dict | None = None) -> Egress:
    applied: dict = {}
    if pods is not None:
        applied["podSelector"] = {"matchLabels": pods}
    if namespaces is not None:
        applied["namespaceSelector"] = {"matchLabels": namespaces}
    spec: dict = {"appliedTo": applied}
    if ip:
        spec["egressIP"] = ip
    if pool:
        spec["externalIPPool"] = pool
    return Egress.from_obj({"metadata": {"name": name, "creationTimestamp": created},
                            "spec": spec, "status": status or {}})


PODS = [pod("web-a", "n1", "10.244.1.10", app="web"),
        pod("web-b", "n2", "10.244.2.10", app="web"),
        pod("web-dev", "n1", "10.244.1.11", ns="dev", app="web"),
        pod("db", "n1", "10.244.1.12", app="db")]


def plans(egresses: list[Egress], alive: set[str], local: dict[str, set[str]] | None = None
          ) -> dict:
    return {n: plan(n, egresses, {"pool": POOL}, PODS, NAMESPACES, NODES, alive,
                    (local or {}).get(n, set())) for n in NODES}


def test_a_pool_ip_goes_to_one_eligible_live_node_which_snats_every_selected_pod():
    web = egress("web", ip="10.10.0.5", pool="pool", pods={"app": "web"})
    result = plans([web], {"n1", "n2", "n3"})
    winner = owner("10.10.0.5", ["n2", "n3"])  # n1 is not selected by the pool
    loser = "n3" if winner == "n2" else "n2"
    assert {n for n, p in result.items() if p.owned} == {winner}
    assert result[winner].owned == {"10.10.0.5": 32}
    assert result[winner].snat == {"10.10.0.5": frozenset(
        {"10.244.1.10", "10.244.2.10", "10.244.1.11"})}
    assert result[winner].reports() == {"web": result[winner].assignments["web"]}
    assert result[loser].snat == {} and result[loser].reports() == {}
    # Pods on other nodes are tunneled to the winner; the winner's own pods are not.
    assert result["n1"].redirects == {"10.244.1.10": NODES[winner].transport_ip,
                                      "10.244.1.11": NODES[winner].transport_ip}
    assert result[winner].redirects == {}


def test_the_ip_moves_when_its_node_dies_and_nothing_serves_it_without_live_nodes():
    web = egress("web", ip="10.10.0.5", pool="pool", pods={"app": "web"})
    first = owner("10.10.0.5", ["n2", "n3"])
    other = "n3" if first == "n2" else "n2"
    result = plans([web], {"n1", other})
    assert result[other].owned == {"10.10.0.5": 32}
    assert result["n1"].redirects["10.244.1.10"] == NODES[other].transport_ip
    nobody = plans([web], {"n1"})
    assert all(not p.owned and not p.redirects for p in nobody.values())
    assert nobody["n1"].assignments["web"].node == ""


def test_selectors_namespace_and_pod_and_the_oldest_egress_wins_a_pod():
    old = egress("old", "2026-01-01T00:00:00Z", ip="10.10.0.2", pool="pool",
                 pods={"app": "web"}, namespaces={"env": "prod"})
    new = egress("new", "2026-02-01T00:00:00Z", ip="10.10.0.3", pool="pool",
                 namespaces={"env": "dev"})
    everything = egress("all", "2026-03-01T00:00:00Z", ip="10.10.0.4", pool="pool", pods={})
    result = plans([everything, new, old], {"n2", "n3"})
    members = {}
    for p in result.values():
        members.update(p.snat)
    assert members["10.10.0.2"] == {"10.244.1.10", "10.244.2.10"}  # prod web
    assert members["10.10.0.3"] == {"10.244.1.11"}  # the dev namespace
    assert members["10.10.0.4"] == {"10.244.1.12"}  # what is left: db
    nothing = egress("nothing", ip="10.10.0.6", pool="pool")  # empty appliedTo
    assert plans([nothing], {"n2", "n3"})[owner("10.10.0.6", ["n2", "n3"])].snat == {
        "10.10.0.6": frozenset()}


def test_a_manual_ip_is_served_by_the_node_holding_it_and_found_by_others_in_the_status():
    manual = egress("m", ip="192.168.1.50", pods={"app": "db"})
    result = plans([manual], {"n1", "n2", "n3"}, local={"n2": {"192.168.1.50"}})
    assert result["n2"].owned == {}  # configured by hand: never (re)configured by us
    assert result["n2"].snat == {"192.168.1.50": frozenset({"10.244.1.12"})}
    assert result["n2"].reports().keys() == {"m"}
    assert result["n1"].redirects == {}  # n1 does not know yet: no status
    reported = egress("m", ip="192.168.1.50", pods={"app": "db"},
                      status={"egressNode": "n2", "egressIP": "192.168.1.50"})
    result = plans([reported], {"n1", "n2", "n3"}, local={"n2": {"192.168.1.50"}})
    assert result["n1"].redirects == {"10.244.1.12": "192.168.1.2"}


def test_an_ip_outside_every_pool_is_served_by_nobody():
    stray = egress("stray", ip="10.99.0.1", pool="pool", pods={"app": "web"})
    assert all(not p.owned and not p.snat for p in plans([stray], {"n2", "n3"}).values())


def test_local_ips_from_cni_stand_in_until_the_api_shows_the_pod_ip():
    obj = {"metadata": {"name": "p", "namespace": "prod", "labels": {}},
           "spec": {"nodeName": "n1"}, "status": {"phase": "Pending"}}
    assert PodRecord.from_obj(obj) is None
    record = PodRecord.from_obj(obj, ("10.244.1.20",))
    assert record is not None and record.ips == ("10.244.1.20",)
    host = {**obj, "spec": {"nodeName": "n1", "hostNetwork": True},
            "status": {"podIP": "192.168.1.1"}}
    assert PodRecord.from_obj(host) is None


def test_a_node_annotation_caps_its_egress_ips_and_the_rest_go_elsewhere():
    many = [egress(f"e{i}", ip=f"10.10.0.{i}", pool="pool", pods={"app": "none"})
            for i in range(2, 10)]
    capped = dict(NODES)
    capped["n2"] = NodeRecord("n2", {"egress": "yes"}, "192.168.1.2", max_egress_ips=1)
    result = {n: plan(n, many, {"pool": POOL}, PODS, NAMESPACES, capped, {"n2", "n3"},
                      set()) for n in ("n2", "n3")}
    assert len(result["n2"].owned) == 1 and len(result["n3"].owned) == 7
    # maxEgressIPsPerNode applies where no annotation says otherwise.
    result = {n: plan(n, many, {"pool": POOL}, PODS, NAMESPACES, capped, {"n2", "n3"},
                      set(), max_ips_per_node=3) for n in ("n2", "n3")}
    assert len(result["n2"].owned) == 1 and len(result["n3"].owned) == 3
    assert NodeRecord.from_obj({"metadata": {"name": "x", "annotations": {
        "node.antrea.io/max-egress-ips": "4"}}}).max_egress_ips == 4
