"""Who writes an Egress's status, against the in-process API server with Antrea's CRDs."""

from __future__ import annotations

import pytest

from antrea_core.apis import crds
from antrea_core.apis.egress import Egress, set_condition, write_status
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import EGRESSES
from antrea_egress.model import Assignment, Plan
from antrea_egress.status import StatusWriter

pytestmark = pytest.mark.unit


def make(raw: RawClient, name: str, status: dict) -> Egress:
    raw.create(EGRESSES, {"apiVersion": "crd.antrea.io/v1beta1", "kind": "Egress",
                          "metadata": {"name": name},
                          "spec": {"appliedTo": {"podSelector": {}}, "egressIP": "10.1.0.5"}})
    write_status(raw, name, lambda st: bool(st.update(status)) or True)
    return Egress.from_obj(raw.get(EGRESSES, name))


def plan_for(me: str, name: str, node: str, ip: str = "10.1.0.5") -> Plan:
    return Plan(me, assignments={name: Assignment(name, ip if node else "", node)})


def test_the_egress_node_reports_itself_and_keeps_the_controllers_condition(raw: RawClient):
    crds.install(raw)
    allocated: dict = {}
    set_condition(allocated, "IPAllocated", "True", "Allocated", "from pool p")
    egress = make(raw, "e1", allocated)
    StatusWriter(raw, "n2").sync(plan_for("n2", "e1", "n2"), {"e1": egress}, {"n1", "n2"})
    status = raw.get(EGRESSES, "e1")["status"]
    assert (status["egressNode"], status["egressIP"]) == ("n2", "10.1.0.5")
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "IPAllocated": "True", "IPAssigned": "True"}


def test_a_dead_nodes_name_is_cleared_by_one_live_node_when_nobody_took_over(raw: RawClient):
    crds.install(raw)
    egress = make(raw, "e2", {"egressNode": "n9", "egressIP": "10.1.0.5"})
    alive = {"n1", "n2"}
    # Not the smallest live name: leaves it to n1 (no two writers).
    StatusWriter(raw, "n2").sync(plan_for("n2", "e2", ""), {"e2": egress}, alive)
    assert raw.get(EGRESSES, "e2")["status"]["egressNode"] == "n9"
    StatusWriter(raw, "n1").sync(plan_for("n1", "e2", ""), {"e2": egress}, alive)
    status = raw.get(EGRESSES, "e2")["status"]
    assert (status["egressNode"], status["egressIP"]) == ("", "")
    [cond] = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("IPAssigned", "False",
                                                             "NoEgressNode")
    assert "n9" in cond["message"]


def test_a_live_node_that_lost_the_egress_clears_only_its_own_name(raw: RawClient):
    crds.install(raw)
    egress = make(raw, "e3", {"egressNode": "n1", "egressIP": "10.1.0.5"})
    # n3 already wrote its name: n1's late clear must not erase it.
    write_status(raw, "e3", lambda st: bool(st.update({"egressNode": "n3"})) or True)
    StatusWriter(raw, "n1").sync(plan_for("n1", "e3", "n3"), {"e3": egress}, {"n1", "n3"})
    assert raw.get(EGRESSES, "e3")["status"]["egressNode"] == "n3"
