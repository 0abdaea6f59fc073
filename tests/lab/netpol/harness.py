"""The lab side of the suite: the model's pods, policies and labels, and "probe the
whole matrix until it matches the expectation or a deadline passes"."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from antrea_lab import cluster, probe
from antrea_lab.labdir import LabDir
from netpol import model
from netpol.model import ALL_COMBOS, POD_KEYS, Combo
from netpol.prober import MatrixProber, Round
from netpol.reachability import Reachability

log = logging.getLogger("antrea.tests.netpol")

# Labels the API server sets itself; resetting labels must leave them alone.
SYSTEM_LABELS = ("kubernetes.io/metadata.name",)
POLICY_DEADLINE = 10.0  # seconds for a policy change to show in the matrix


@dataclass
class Converged:
    """The first round whose matrix matched, timed from `since` (the change)."""

    rounds: int
    since: float
    round: Round

    @property
    def at_least(self) -> float:
        """The matching round started here: convergence cannot be proven earlier."""
        return self.round.started - self.since

    @property
    def within(self) -> float:
        """By the end of the matching round every cell had been seen right: an upper
        bound of the convergence time, precise to one probe timeout."""
        return self.round.finished - self.since


class NetpolCluster:
    def __init__(self, lab: LabDir, probe_timeout: float = 0.5) -> None:
        self.lab = lab
        api = cluster.kube_client(lab)
        self.core = client.CoreV1Api(api)
        self.net = client.NetworkingV1Api(api)
        self.prober = MatrixProber(timeout=probe_timeout)
        self.figures: list[str] = []  # timings printed at the end of the module

    # -- model --------------------------------------------------------------------------
    def create_model(self, timeout: float = 180.0) -> None:
        for ns in model.NAMESPACES:
            self.core.create_namespace(model.namespace_manifest(ns))
        for key in POD_KEYS:
            ns = key.split("/")[0]
            self.core.create_namespaced_pod(ns, model.pod_manifest(key))
        deadline = time.monotonic() + timeout
        while len(self.endpoints()) < len(POD_KEYS):
            if time.monotonic() > deadline:
                missing = sorted(set(POD_KEYS) - set(self.endpoints()))
                raise AssertionError(f"model pods not running after {timeout:.0f}s: {missing}")
            time.sleep(0.5)

    def endpoints(self) -> dict[str, probe.PodEndpoint]:
        """Running model pods by key ('x/a'), in the lab's netns."""
        pods = []
        for ns in model.NAMESPACES:
            pods += self.core.list_namespaced_pod(ns).items
        return {e.key: e for e in probe.pod_endpoints(self.lab, pods) if e.key in POD_KEYS}

    def ip(self, key: str) -> str:
        return self.endpoints()[key].ip

    # -- probing --------------------------------------------------------------------------
    def probe_once(self, combos: Iterable[Combo] = ALL_COMBOS,
                   timeout: float | None = None) -> Round:
        eps = self.endpoints()
        return self.prober.probe([eps[k] for k in POD_KEYS if k in eps], list(combos),
                                 timeout)

    def expect(self, reach: Reachability, what: str, deadline: float = POLICY_DEADLINE,
               since: float | None = None) -> Converged:
        """Probe whole matrices until one matches `reach`; fail with the last diff."""
        since = time.monotonic() if since is None else since
        end = since + deadline
        rounds = 0
        last = "no round probed"
        while True:
            eps = self.endpoints()
            missing = [k for k in POD_KEYS if k not in eps]
            if missing:
                last = f"model pods not running: {missing}"
            else:
                rounds += 1
                rnd = self.prober.probe([eps[k] for k in POD_KEYS], reach.combos)
                if not reach.mismatches(rnd.observed, rnd.errors):
                    return Converged(rounds, since, rnd)
                last = reach.report(rnd.observed, rnd.errors)
            if time.monotonic() > end:
                raise AssertionError(
                    f"{what}: the connectivity matrix did not match within {deadline:.0f}s "
                    f"({rounds} round(s) probed); last round:\n{last}")
            time.sleep(0.05 if not missing else 0.5)

    def note(self, text: str) -> None:
        self.figures.append(text)
        print(text)

    # -- policies -------------------------------------------------------------------------
    def create_policy(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        self.net.create_namespaced_network_policy(
            ns, {"metadata": {"name": name, "namespace": ns}, "spec": spec})

    def replace_policy(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        current = self.net.read_namespaced_network_policy(name, ns)
        self.net.replace_namespaced_network_policy(name, ns, {
            "metadata": {"name": name, "namespace": ns,
                         "resourceVersion": current.metadata.resource_version},
            "spec": spec})

    def delete_policy(self, ns: str, name: str) -> None:
        self.net.delete_namespaced_network_policy(name, ns)

    # -- labels and pods ------------------------------------------------------------------
    def label_pod(self, key: str, labels: dict[str, str | None]) -> None:
        """Set labels (None removes one) with a strategic merge patch."""
        ns, name = key.split("/")
        self.core.patch_namespaced_pod(name, ns, {"metadata": {"labels": labels}})

    def label_namespace(self, ns: str, labels: dict[str, str | None]) -> None:
        self.core.patch_namespace(ns, {"metadata": {"labels": labels}})

    def recreate_pod(self, key: str, timeout: float = 60.0) -> None:
        """Delete a model pod, wait until it is gone, create it again (new uid, IP)."""
        ns, name = key.split("/")
        self.core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.core.read_namespaced_pod(name, ns)
            except ApiException as exc:
                if exc.status == 404:
                    break
                raise
            if time.monotonic() > deadline:
                raise AssertionError(f"pod {key} still present {timeout:.0f}s after delete")
            time.sleep(0.2)
        self.core.create_namespaced_pod(ns, model.pod_manifest(key))

    # -- between cases --------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the model: no policies, model labels, every model pod present; then
        wait until everything connects again so the next case starts clean."""
        for ns in model.NAMESPACES:
            for pol in self.net.list_namespaced_network_policy(ns).items:
                self.net.delete_namespaced_network_policy(pol.metadata.name, ns)
            current = self.core.read_namespace(ns).metadata.labels or {}
            self.label_namespace(ns, _restore(current, model.namespace_labels(ns)))
        pods = {f"{p.metadata.namespace}/{p.metadata.name}": p
                for ns in model.NAMESPACES for p in self.core.list_namespaced_pod(ns).items}
        for key in POD_KEYS:
            pod = pods.get(key)
            if pod is None:
                self.core.create_namespaced_pod(key.split("/")[0], model.pod_manifest(key))
                continue
            wanted = model.pod_labels(key.split("/")[1])
            self.label_pod(key, _restore(pod.metadata.labels or {}, wanted))
        self.expect(Reachability(POD_KEYS), "reset to no policy", deadline=30.0)

    def close(self) -> None:
        self.prober.close()


def _restore(current: dict[str, str], wanted: dict[str, str]) -> dict[str, str | None]:
    patch: dict[str, str | None] = {k: None for k in current
                                    if k not in wanted and k not in SYSTEM_LABELS}
    patch.update(wanted)
    return patch
