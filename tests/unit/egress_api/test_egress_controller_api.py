"""Egress IP allocation against the lab API server (in-process): the CRDs installed from
antrea_core/apis/crds, EgressIPController writing spec, conditions and pool usage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from antrea_core.apis import crds
from antrea_core.apis.egress import Egress, set_condition, write_status
from antrea_core.controller.egress import EgressIPController
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import EGRESSES, EXTERNAL_IP_POOLS

pytestmark = pytest.mark.unit

TIMEOUT = 30.0


def wait_for(what: str, fn: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


@pytest.fixture
def api(raw: RawClient) -> RawClient:
    crds.install(raw)
    return raw


@pytest.fixture
def controllers(api: RawClient) -> Iterator[Callable[[], EgressIPController]]:
    started: list[EgressIPController] = []

    def make() -> EgressIPController:
        ctl = EgressIPController(api, watch_timeout=30)
        ctl.start()
        started.append(ctl)
        return ctl

    yield make
    for ctl in started:
        ctl.stop()


def pool(raw: RawClient, name: str, *ranges: dict[str, str], **spec: Any) -> dict:
    return raw.create(EXTERNAL_IP_POOLS, {
        "apiVersion": "crd.antrea.io/v1beta1", "kind": "ExternalIPPool",
        "metadata": {"name": name},
        "spec": {"ipRanges": list(ranges), "nodeSelector": {}, **spec}})


def egress(raw: RawClient, name: str, **spec: Any) -> dict:
    return raw.create(EGRESSES, {
        "apiVersion": "crd.antrea.io/v1beta1", "kind": "Egress",
        "metadata": {"name": name},
        "spec": {"appliedTo": {"podSelector": {"matchLabels": {"app": name}}}, **spec}})


def get_egress(raw: RawClient, name: str) -> Egress:
    return Egress.from_obj(raw.get(EGRESSES, name))


def allocated(raw: RawClient, name: str) -> dict | None:
    """The IPAllocated condition once the controller wrote it."""
    return get_egress(raw, name).condition("IPAllocated")


def condition_is(raw: RawClient, name: str, status: str, reason: str) -> Callable[[], bool]:
    def check() -> bool:
        cond = allocated(raw, name)
        return cond is not None and (cond["status"], cond["reason"]) == (status, reason)
    return check


def usage(raw: RawClient, name: str) -> dict | None:
    return (raw.get(EXTERNAL_IP_POOLS, name).get("status") or {}).get("usage")


def test_crds_install_idempotently_and_serve_both_kinds(raw: RawClient) -> None:
    assert crds.install(raw) == ["egresses.crd.antrea.io", "externalippools.crd.antrea.io"]
    assert crds.install(raw) == ["egresses.crd.antrea.io", "externalippools.crd.antrea.io"]
    assert raw.list(EGRESSES)["items"] == []
    assert raw.list(EXTERNAL_IP_POOLS)["items"] == []
    crd = raw.request("GET", f"{crds.CRD_PATH}/egresses.crd.antrea.io")
    assert crd["spec"]["names"]["shortNames"] == ["eg"]


def test_schema_rejects_a_bad_egress_ip_naming_the_field(api: RawClient) -> None:
    with pytest.raises(ApiException) as err:
        egress(api, "bad", egressIP="10.0.0.300")
    assert err.value.status == 422
    assert "spec.egressIP" in err.value.body


def test_schema_rejects_a_bad_cidr_naming_the_field(api: RawClient) -> None:
    with pytest.raises(ApiException) as err:
        pool(api, "bad", {"cidr": "10.0.0.0/28"}, {"cidr": "nonsense"})
    assert err.value.status == 422
    assert "spec.ipRanges[1].cidr" in err.value.body


def test_controller_allocates_the_lowest_free_ip_and_writes_usage(api, controllers) -> None:
    pool(api, "p", {"cidr": "10.10.0.0/30"})  # 10.10.0.1, 10.10.0.2
    egress(api, "a", externalIPPool="p")
    controllers()
    wait_for("a allocated", condition_is(api, "a", "True", "Allocated"))
    assert get_egress(api, "a").egress_ip == "10.10.0.1"
    egress(api, "b", externalIPPool="p")
    wait_for("b allocated", condition_is(api, "b", "True", "Allocated"))
    assert get_egress(api, "b").egress_ip == "10.10.0.2"
    wait_for("usage 2/2", lambda: usage(api, "p") == {"total": 2, "used": 2})


def test_exhausted_pool_is_retried_when_an_ip_is_released(api, controllers) -> None:
    pool(api, "p", {"start": "10.10.0.5", "end": "10.10.0.5"})
    egress(api, "a", externalIPPool="p")
    controllers()
    wait_for("a allocated", condition_is(api, "a", "True", "Allocated"))
    egress(api, "b", externalIPPool="p")
    wait_for("b exhausted", condition_is(api, "b", "False", "PoolExhausted"))
    assert get_egress(api, "b").egress_ip == ""
    api.delete(EGRESSES, "a")
    wait_for("b gets the released IP", condition_is(api, "b", "True", "Allocated"))
    assert get_egress(api, "b").egress_ip == "10.10.0.5"
    wait_for("usage 1/1", lambda: usage(api, "p") == {"total": 1, "used": 1})


def test_named_ips_out_of_range_and_in_conflict_get_reasons_naming_the_field(
        api, controllers) -> None:
    pool(api, "p", {"cidr": "10.10.0.0/29"})
    egress(api, "a", externalIPPool="p", egressIP="10.10.0.3")
    controllers()
    wait_for("a reserved", condition_is(api, "a", "True", "Allocated"))
    egress(api, "b", externalIPPool="p", egressIP="10.10.0.3")
    egress(api, "c", externalIPPool="p", egressIP="10.99.0.1")
    wait_for("b conflict", condition_is(api, "b", "False", "IPConflict"))
    wait_for("c out of range", condition_is(api, "c", "False", "IPOutOfRange"))
    assert "spec.egressIP" in allocated(api, "b")["message"]
    assert "Egress a" in allocated(api, "b")["message"]
    assert "spec.egressIP" in allocated(api, "c")["message"]
    # The reserved IP is not handed out: the next allocation skips it.
    egress(api, "d", externalIPPool="p")
    wait_for("d allocated", condition_is(api, "d", "True", "Allocated"))
    assert get_egress(api, "d").egress_ip == "10.10.0.1"
    wait_for("usage 2/6", lambda: usage(api, "p") == {"total": 6, "used": 2})


def test_missing_pool_is_reported_then_allocated_when_it_appears(api, controllers) -> None:
    egress(api, "a", externalIPPool="later")
    controllers()
    wait_for("pool not found", condition_is(api, "a", "False", "PoolNotFound"))
    pool(api, "later", {"cidr": "10.20.0.0/24"})
    wait_for("a allocated", condition_is(api, "a", "True", "Allocated"))
    assert get_egress(api, "a").egress_ip == "10.20.0.1"


def test_egress_without_pool_is_left_alone(api, controllers) -> None:
    egress(api, "manual", egressIP="192.0.2.10")
    pool(api, "p", {"cidr": "10.10.0.0/30"})
    ctl = controllers()
    wait_for("pool usage", lambda: usage(api, "p") == {"total": 2, "used": 0})
    wait_for("a pass done", lambda: ctl.syncs > 0)
    e = get_egress(api, "manual")
    assert e.egress_ip == "192.0.2.10" and e.conditions == ()


def test_restart_rebuilds_allocations_without_moving_any_ip(api, controllers) -> None:
    pool(api, "p", {"cidr": "10.10.0.0/29"})
    for name in ("a", "b", "c"):
        egress(api, name, externalIPPool="p")
    first = controllers()
    for name in ("a", "b", "c"):
        wait_for(f"{name} allocated", condition_is(api, name, "True", "Allocated"))
    before = {n: get_egress(api, n).egress_ip for n in ("a", "b", "c")}
    api.delete(EGRESSES, "a")  # frees the lowest IP
    wait_for("usage 2", lambda: (usage(api, "p") or {}).get("used") == 2)
    first.stop()
    versions = {n: api.get(EGRESSES, n)["metadata"]["resourceVersion"] for n in ("b", "c")}
    second = controllers()
    wait_for("second controller synced", lambda: second.syncs > 0)
    egress(api, "d", externalIPPool="p")
    wait_for("d allocated", condition_is(api, "d", "True", "Allocated"))
    # b and c keep their IPs and were not rewritten; d gets the freed one.
    assert {n: api.get(EGRESSES, n)["metadata"]["resourceVersion"] for n in ("b", "c")} \
        == versions
    assert {n: get_egress(api, n).egress_ip for n in ("b", "c")} == \
        {n: before[n] for n in ("b", "c")}
    assert get_egress(api, "d").egress_ip == before["a"]
    assert second.allocator.held_by("b") == {"p": before["b"]}


def test_pool_change_releases_the_old_ip_and_allocates_from_the_new_pool(
        api, controllers) -> None:
    pool(api, "old", {"cidr": "10.10.0.0/30"})
    pool(api, "new", {"cidr": "10.30.0.0/30"})
    egress(api, "a", externalIPPool="old")
    controllers()
    wait_for("a allocated", condition_is(api, "a", "True", "Allocated"))
    api.patch(EGRESSES, "a", {"spec": {"externalIPPool": "new"}})
    wait_for("a moved", lambda: get_egress(api, "a").egress_ip == "10.30.0.1")
    wait_for("old released", lambda: usage(api, "old") == {"total": 2, "used": 0})
    wait_for("new used", lambda: usage(api, "new") == {"total": 2, "used": 1})


def test_agent_status_fields_survive_the_controllers_condition_writes(
        api, controllers) -> None:
    pool(api, "p", {"cidr": "10.10.0.0/30"})
    egress(api, "a", externalIPPool="p", egressIP="10.10.0.9")  # out of range first
    controllers()
    wait_for("out of range", condition_is(api, "a", "False", "IPOutOfRange"))

    def agent(status: dict) -> bool:
        status["egressNode"], status["egressIP"] = "node1", "10.10.0.9"
        return set_condition(status, "IPAssigned", "True", "Assigned", "on node1")
    write_status(api, "a", agent)
    api.patch(EGRESSES, "a", {"spec": {"egressIP": "10.10.0.2"}})
    wait_for("allocated", condition_is(api, "a", "True", "Allocated"))
    e = get_egress(api, "a")
    assert (e.status_node, e.status_ip) == ("node1", "10.10.0.9")
    assert e.condition("IPAssigned")["status"] == "True"


def test_write_status_retries_on_conflict(api) -> None:
    egress(api, "a", egressIP="192.0.2.1")
    calls = []

    def mutate(status: dict) -> bool:
        calls.append(1)
        if len(calls) == 1:  # someone else writes between our GET and PUT
            other = api.get(EGRESSES, "a")
            other["status"] = {"egressNode": "n2"}
            api.request("PUT", EGRESSES.path(None, "a") + "/status", body=other)
        return set_condition(status, "IPAllocated", "True", "Allocated", "x")
    write_status(api, "a", mutate)
    assert len(calls) == 2
    e = get_egress(api, "a")
    assert e.status_node == "n2" and e.condition("IPAllocated")["message"] == "x"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("gate", [True, False])
def test_antrea_controller_allocates_only_behind_the_egress_gate(
        api, apiserver, tmp_path, gate: bool) -> None:
    import threading

    from antrea_core.config.loading import load_controller_config
    from antrea_core.controller import main

    pool(api, "p", {"cidr": "10.10.0.0/30"})
    egress(api, "a", externalIPPool="p")
    cfg = load_controller_config(None, {"apiPort": _free_port(),
                                        "featureGates": {"Egress": gate}})
    running = main.start(cfg, kubeconfig=str(apiserver.kubeconfig), bind_address="127.0.0.1",
                         cert_dir=tmp_path / "certs", stop=threading.Event(),
                         watch_timeout=30)
    try:
        if gate:
            wait_for("a allocated", condition_is(api, "a", "True", "Allocated"))
        else:
            assert running.egress is None
            time.sleep(1.0)
            assert allocated(api, "a") is None
    finally:
        running.stop()
    if gate:
        assert not running.egress.egresses._thread.is_alive()


def test_dropping_the_pool_removes_the_allocated_condition_and_frees_the_ip(
        api, controllers) -> None:
    pool(api, "p", {"cidr": "10.10.0.0/30"})
    egress(api, "a", externalIPPool="p")
    controllers()
    wait_for("a allocated", condition_is(api, "a", "True", "Allocated"))
    ip = get_egress(api, "a").egress_ip
    api.patch(EGRESSES, "a", {"spec": {"externalIPPool": None}})
    wait_for("condition gone", lambda: allocated(api, "a") is None)
    assert get_egress(api, "a").egress_ip == ip  # kept: now the user's to place
    wait_for("released", lambda: usage(api, "p") == {"total": 2, "used": 0})
