"""Every lab case, run against a fake cluster whose "datapath" is policy_oracle: checks
the hand-written expected matrices (and the cases' steps) without a lab."""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from netpol import model
from netpol import test_netpol_conformance as cases
from netpol.harness import Converged
from netpol.model import ALL_COMBOS, POD_KEYS, Combo
from netpol.policy_oracle import Oracle
from netpol.prober import Round
from netpol.reachability import Reachability
from netpol.truthtable import TruthTable

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class FakeEndpoint:
    ip: str
    netns: str


class FakeCluster:
    """The NetpolCluster interface the cases use, over in-memory state."""

    def __init__(self) -> None:
        self.ns_labels = {ns: {**model.namespace_labels(ns),
                               "kubernetes.io/metadata.name": ns} for ns in model.NAMESPACES}
        self.pod_labels = {k: model.pod_labels(k.split("/")[1]) for k in POD_KEYS}
        self.ips = {k: f"10.244.{i % 3}.{10 + i}" for i, k in enumerate(POD_KEYS)}
        self.generation = {k: 0 for k in POD_KEYS}
        self.policies: dict[tuple[str, str], dict[str, Any]] = {}
        self.checked = 0

    def _observe(self, combos: list[Combo]) -> Round:
        oracle = Oracle(self.ns_labels, self.pod_labels, self.ips, self.policies)
        observed = {c: TruthTable(POD_KEYS) for c in combos}
        for combo in combos:
            for s, d in observed[combo].cells():
                observed[combo].set(s, d, oracle.connected(s, d, *combo))
        return Round(0.0, 0.001, observed, rtt_ms=[1.0])

    def expect(self, reach: Reachability, what: str, deadline: float = 0.0,
               since: float | None = None) -> Converged:
        rnd = self._observe(reach.combos)
        assert not reach.mismatches(rnd.observed), f"{what}:\n{reach.report(rnd.observed)}"
        self.checked += 1
        return Converged(1, time.monotonic() if since is None else since, rnd)

    def probe_once(self, combos: Any = ALL_COMBOS, timeout: float | None = None) -> Round:
        return self._observe(list(combos))

    def note(self, text: str) -> None:
        pass

    def endpoints(self) -> dict[str, FakeEndpoint]:
        return {k: FakeEndpoint(self.ips[k], f"{k}#{self.generation[k]}") for k in POD_KEYS}

    def ip(self, key: str) -> str:
        return self.ips[key]

    def create_policy(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        assert (ns, name) not in self.policies, f"policy {ns}/{name} exists"
        self.policies[(ns, name)] = copy.deepcopy(spec)

    def replace_policy(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        assert (ns, name) in self.policies
        self.policies[(ns, name)] = copy.deepcopy(spec)

    def delete_policy(self, ns: str, name: str) -> None:
        del self.policies[(ns, name)]

    @staticmethod
    def _patch(labels: dict[str, str], patch: dict[str, str | None]) -> None:
        for key, value in patch.items():
            if value is None:
                labels.pop(key, None)
            else:
                labels[key] = value

    def label_pod(self, key: str, labels: dict[str, str | None]) -> None:
        self._patch(self.pod_labels[key], labels)

    def label_namespace(self, ns: str, labels: dict[str, str | None]) -> None:
        self._patch(self.ns_labels[ns], labels)

    def recreate_pod(self, key: str) -> None:
        self.generation[key] += 1
        self.pod_labels[key] = model.pod_labels(key.split("/")[1])
        self.ips[key] = f"10.244.9.{self.generation[key]}"


# Checks the lab's instruments with iptables in a pod: nothing for the oracle to judge.
LAB_ONLY = {"test_prober_sees_blocked_cells_and_times_an_instant_change"}


def _lab_cases() -> list[Any]:
    out = []
    for name, fn in inspect.getmembers(cases, inspect.isfunction):
        if not name.startswith("test_") or name in LAB_ONLY:
            continue
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        if not marks:
            out.append(pytest.param(fn, {}, id=name))
            continue
        argnames, argvalues = marks[0].args[:2]
        names = [a.strip() for a in argnames.split(",")]
        ids = marks[0].kwargs.get("ids") or [str(i) for i in range(len(argvalues))]
        for values, case_id in zip(argvalues, ids, strict=True):
            out.append(pytest.param(fn, dict(zip(names, values, strict=True)),
                                    id=f"{name}[{case_id}]"))
    return out


@pytest.mark.parametrize("case, params", _lab_cases())
def test_hand_written_matrices_agree_with_the_policy_oracle(
        case: Callable[..., None], params: dict[str, Any]) -> None:
    fake = FakeCluster()
    case(fake, **params)
    assert fake.checked >= 1, "the case asserted no matrix"


def test_the_oracle_catches_a_wrong_expectation():
    fake = FakeCluster()
    fake.create_policy("x", "deny", cases.DENY_INGRESS)
    with pytest.raises(AssertionError, match="x/b -> x/a: expected connected, observed blocked"):
        fake.expect(cases.allow_all().expect("*", "x/c", ok=False), "wrong on purpose")
