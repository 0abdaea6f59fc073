"""Controller NetworkPolicy computation at Antrea's perf-test scales.

Reproduces the workloads of Antrea's `networkpolicy_controller_perf_test.go`:

- `small-namespaces`: 25,000 namespaces, each with 4 pods (2 labelled app-1=scale-1, 2
  app-2=scale-2), a default-deny-all policy (Ingress+Egress, no rules) and two policies
  selecting app-N and allowing ingress from app-N (100k pods, 75k policies);
- `one-namespace`: 1 namespace, 10,000 pods and 10,000 policies that all select every pod
  (applied-to and ingress peer: app-1=scale-1);
- `netpol-per-pod`: 1 namespace, 10,000 pods with distinct labels and 10,000 policies, each
  applied to one pod and allowing ingress from one other pod (10,000 distinct selectors:
  the case where scanning every group per pod would be quadratic);
- `cluster-scoped`: 1,000 namespaces (100 `company` labels), each with 100 pods and 10 policies,
  allowing ingress from app=scale-j pods of every namespace of the same company
  (podSelector AND namespaceSelector peers; 100k pods, 10k policies).

Pods get random IPs on one of 1,000 nodes, as in Antrea's test. Each workload runs in a
fresh subprocess so peak RSS (ru_maxrss) is per workload. Everything is fed inside one
`batch()` (as an informer's initial list would be), computing incrementally as objects
arrive and publishing each object once at the end; the time covers feeding + computing +
publishing to a store that keeps the latest object per name. Then a few single-event
updates are timed. Antrea's Go controller reports ~6 s / ~1.6 GB (small-namespaces) and
~10.7 s / ~1.2 GB (one-namespace) for the initial computation (its file gives no figures
for the other two). Usage:

    .venv/bin/python bench/controller_scale.py [--workload NAME] [--order pods-first|policies-first]
                                               [--profile]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import string
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from antrea_core.apis.controlplane import ControlPlaneObject, ObjectKind, kind_of
from antrea_core.controller.networkpolicy import NetworkPolicyController

WORKLOADS = ("small-namespaces", "one-namespace", "netpol-per-pod", "cluster-scoped")
rng = random.Random(42)


class CountingStore:
    """Latest object per (kind, name) plus call counts, like a store without watchers."""

    def __init__(self) -> None:
        self.objects: dict[tuple[ObjectKind, str], tuple[ControlPlaneObject, frozenset]] = {}
        self.upserts: Counter[ObjectKind] = Counter()
        self.deletes: Counter[ObjectKind] = Counter()

    def upsert(self, obj: ControlPlaneObject, span: frozenset[str]) -> None:
        kind = kind_of(obj)
        self.objects[(kind, obj.name)] = (obj, span)
        self.upserts[kind] += 1

    def delete(self, kind: ObjectKind, name: str) -> None:
        self.objects.pop((kind, name), None)
        self.deletes[kind] += 1


def rand_name(n: int = 8) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=n))


def ns_obj(name: str) -> dict:
    return {"metadata": {"name": name, "labels": {"app": name}}}


def pod_obj(ns: str, name: str, labels: dict[str, str]) -> dict:
    ip = ".".join(str(rng.randrange(256)) for _ in range(4))
    return {"metadata": {"namespace": ns, "name": name, "uid": rand_name(16), "labels": labels},
            "spec": {"nodeName": f"Node-{rng.randrange(1000)}", "hostNetwork": False},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def policy_obj(ns: str, name: str, selector: dict[str, str] | None,
               ingress_selector: dict[str, str] | None) -> dict:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": selector} if selector else {},
                            "policyTypes": ["Ingress", "Egress"]}
    if ingress_selector is not None:
        spec["ingress"] = [{"from": [{"podSelector": {"matchLabels": ingress_selector}}]}]
    return {"metadata": {"namespace": ns, "name": name, "uid": rand_name(16), "generation": 1},
            "spec": spec}


def small_namespaces() -> tuple[list[dict], list[dict], list[dict]]:
    namespaces, policies, pods = [], [], []
    for _ in range(25_000):
        ns = rand_name()
        namespaces.append(ns_obj(ns))
        policies.append(policy_obj(ns, "default-deny-all", None, None))
        for i in (1, 2):
            sel = {f"app-{i}": f"scale-{i}"}
            policies.append(policy_obj(ns, f"np-{i}", sel, sel))
        for i, app in ((1, 1), (2, 1), (3, 2), (4, 2)):
            pods.append(pod_obj(ns, f"pod{i}", {f"app-{app}": f"scale-{app}"}))
    return namespaces, policies, pods


def one_namespace() -> tuple[list[dict], list[dict], list[dict]]:
    ns = rand_name()
    sel = {"app-1": "scale-1"}
    policies = [policy_obj(ns, f"np-{rand_name()}", sel, sel) for _ in range(10_000)]
    pods = [pod_obj(ns, f"pod-{rand_name()}", dict(sel)) for _ in range(10_000)]
    return [ns_obj(ns)], policies, pods


def calibration_ms() -> float:
    """CPU time of a fixed pure-Python loop. On a shared machine figures swing with load:
    compare runs (and machines) together with this number."""
    t0 = time.process_time()
    d: dict[int, int] = {}
    for i in range(1_000_000):
        d[i & 1023] = i
    return (time.process_time() - t0) * 1000


def netpol_per_pod() -> tuple[list[dict], list[dict], list[dict]]:
    ns = rand_name()
    policies, pods = [], []
    for _ in range(5_000):
        l1, l2 = {"app": f"scale-{rand_name()}"}, {"app": f"scale-{rand_name()}"}
        policies.append(policy_obj(ns, f"np-{rand_name()}", l1, l2))
        policies.append(policy_obj(ns, f"np-{rand_name()}", l2, l1))
        pods.append(pod_obj(ns, f"pod-{rand_name()}", l1))
        pods.append(pod_obj(ns, f"pod-{rand_name()}", l2))
    return [ns_obj(ns)], policies, pods


def cluster_scoped() -> tuple[list[dict], list[dict], list[dict]]:
    namespaces, policies, pods = [], [], []
    for i in range(1_000):
        company = f"company-{i % 100}"
        ns = f"{company}-{rand_name()}"
        namespaces.append({"metadata": {"name": ns, "labels": {"company": company}}})
        for j in range(10):
            sel = {"app": f"scale-{j}"}
            np = policy_obj(ns, f"np-{j}", sel, None)
            np["spec"]["ingress"] = [{"from": [{"podSelector": {"matchLabels": sel},
                                                "namespaceSelector": {"matchLabels":
                                                                      {"company": company}}}]}]
            policies.append(np)
            pods.extend(pod_obj(ns, f"pod-{j}-{k}", dict(sel)) for k in range(10))
    return namespaces, policies, pods


GENERATORS = {"small-namespaces": small_namespaces, "one-namespace": one_namespace,
              "netpol-per-pod": netpol_per_pod, "cluster-scoped": cluster_scoped}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_workload(name: str, order: str, profile: bool) -> dict:
    namespaces, policies, pods = GENERATORS[name]()
    gc.collect()
    rss_inputs = rss_mb()
    store = CountingStore()
    ctl = NetworkPolicyController(store)
    groups = (namespaces, pods, policies) if order == "pods-first" \
        else (namespaces, policies, pods)
    feeders = {id(namespaces): ctl.add_namespace, id(pods): ctl.add_pod,
               id(policies): ctl.add_network_policy}
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    calib = calibration_ms()
    start = time.perf_counter()
    cpu_start = time.process_time()
    with ctl.batch():
        for objs in groups:
            feed = feeders[id(objs)]
            for obj in objs:
                feed(obj)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    if profiler is not None:
        import pstats
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    rss_peak = rss_mb()
    counts = Counter(k for k, _ in store.objects)
    initial_upserts = {k.value: v for k, v in store.upserts.items()}
    # Incremental: single events after the initial sync, each its own batch. A label
    # change no selector mentions; a label toggle that makes a pod leave and rejoin its
    # groups (republishing them, and every policy whose span changes); late pod adds.
    target_ns = namespaces[0]["metadata"]["name"]
    sample = [p for p in pods if p["metadata"]["namespace"] == target_ns][:4]

    def relabel(p: dict, labels: dict[str, str]) -> dict:
        return {**p, "metadata": {**p["metadata"], "labels": labels}}

    def timed(events: list[tuple]) -> float:
        t0 = time.perf_counter()
        for fn, obj in events:
            fn(obj)
        return (time.perf_counter() - t0) / len(events) * 1000

    upserts_before = sum(store.upserts.values())
    unrelated = timed([(ctl.update_pod, relabel(p, {**p["metadata"]["labels"], "x": str(i)}))
                       for i in range(50) for p in sample])
    toggle = timed([(ctl.update_pod, relabel(p, {} if i % 2 == 0 else p["metadata"]["labels"]))
                    for i in range(20) for p in sample])
    toggle_upserts = (sum(store.upserts.values()) - upserts_before) / (20 * len(sample))
    late = timed([(ctl.add_pod, pod_obj(target_ns, f"late-{i}",
                                        dict(sample[0]["metadata"]["labels"])))
                  for i in range(50)])
    return {
        "workload": name, "order": order, "namespaces": len(namespaces), "pods": len(pods),
        "policies": len(policies), "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2), "calibration_ms": round(calib),
        "rss_inputs_mb": round(rss_inputs), "rss_peak_mb": round(rss_peak),
        "network_policies": counts[ObjectKind.NETWORK_POLICY],
        "applied_to_groups": counts[ObjectKind.APPLIED_TO_GROUP],
        "address_groups": counts[ObjectKind.ADDRESS_GROUP],
        "upserts": initial_upserts,
        "selector_evaluations": ctl.index.evaluations,
        "label_update_ms": round(unrelated, 3), "label_toggle_ms": round(toggle, 3),
        "toggle_upserts": round(toggle_upserts, 1), "pod_add_ms": round(late, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=WORKLOADS)
    parser.add_argument("--order", choices=("pods-first", "policies-first"), default="pods-first")
    parser.add_argument("--profile", action="store_true", help="cProfile to stderr")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_workload(args.workload, args.order, args.profile)))
        return
    print(f"{'workload':18} {'order':15} {'ns':>6} {'pods':>7} {'policies':>8} {'wall s':>7} "
          f"{'cpu s':>6} "
          f"{'RSS MB':>7} {'(inputs)':>8} {'NPs':>6} {'ATGs':>6} {'AGs':>6} "
          f"{'label upd ms':>12} {'toggle ms':>9} {'pod add ms':>10}")
    for name in [args.workload] if args.workload else WORKLOADS:
        cmd = [sys.executable, __file__, "--child", "--workload", name, "--order", args.order]
        if args.profile:
            cmd.append("--profile")
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{r['workload']:18} {r['order']:15} {r['namespaces']:>6} {r['pods']:>7} "
              f"{r['policies']:>8} {r['seconds']:>7} {r['cpu_seconds']:>6} {r['rss_peak_mb']:>7} "
              f"{r['rss_inputs_mb']:>8} {r['network_policies']:>6} {r['applied_to_groups']:>6} "
              f"{r['address_groups']:>6} {r['label_update_ms']:>12} {r['label_toggle_ms']:>9} "
              f"{r['pod_add_ms']:>10}")
        print(f"    initial upserts={r['upserts']} "
              f"selector_evaluations={r['selector_evaluations']} "
              f"upserts_per_toggle={r['toggle_upserts']} calibration={r['calibration_ms']} ms")


if __name__ == "__main__":
    main()
