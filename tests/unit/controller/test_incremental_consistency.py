"""Incremental updates end where a from-scratch computation of the final state ends."""

from __future__ import annotations

import random

import pytest
from netpol_objects import RecordingStore, namespace, pod, policy

from antrea_core.controller.networkpolicy import NetworkPolicyController

pytestmark = pytest.mark.unit

NAMESPACES = ("a", "b", "c")
KEYS = ("app", "tier", "env")
VALUES = ("x", "y")


def random_expression(rng: random.Random) -> dict:
    op = rng.choice(("In", "NotIn", "Exists", "DoesNotExist"))
    expr: dict = {"key": rng.choice(KEYS), "operator": op}
    if op in ("In", "NotIn"):
        expr["values"] = rng.sample(VALUES, rng.randint(1, 2))
    return expr


def random_selector(rng: random.Random) -> dict:
    shape = rng.randrange(5)
    if shape == 0:
        return {}
    if shape == 1:
        return {"matchLabels": {rng.choice(KEYS): rng.choice(VALUES)}}
    if shape == 2:
        return {"matchExpressions": [random_expression(rng)]}
    selector: dict = {"matchExpressions": [random_expression(rng)
                                           for _ in range(rng.randint(1, 2))]}
    if rng.random() < 0.5:
        selector["matchLabels"] = {rng.choice(KEYS): rng.choice(VALUES)}
    return selector


def random_peer(rng: random.Random) -> dict:
    shape = rng.randrange(3)
    if shape == 0:
        return {"podSelector": random_selector(rng)}
    if shape == 1:
        return {"namespaceSelector": random_selector(rng)}
    return {"podSelector": random_selector(rng), "namespaceSelector": random_selector(rng)}


def random_labels(rng: random.Random) -> dict:
    return {k: rng.choice(VALUES) for k in KEYS if rng.random() < 0.5}


@pytest.mark.parametrize("seed", range(10))
def test_random_event_stream_matches_recomputation(seed: int) -> None:
    rng = random.Random(seed)
    store = RecordingStore()
    ctl = NetworkPolicyController(store)
    pods: dict[tuple[str, str], dict] = {}
    namespaces: dict[str, dict] = {}
    policies: dict[tuple[str, str], dict] = {}
    for step in range(400):
        action = rng.random()
        ns = rng.choice(NAMESPACES)
        if action < 0.45:
            key = (ns, f"p{rng.randrange(12)}")
            if key in pods and rng.random() < 0.3:
                ctl.delete_pod(pods.pop(key))
            else:
                # Some are scheduled without an IP yet: applied-to members, no peers.
                ip = None if rng.random() < 0.2 else f"10.0.{step % 250}.{rng.randrange(250)}"
                pods[key] = pod(ns, key[1], ip, f"n{rng.randrange(5)}", random_labels(rng),
                                phase=rng.choice(("Running", "Running", "Succeeded")))
                ctl.update_pod(pods[key])
        elif action < 0.6:
            if ns in namespaces and rng.random() < 0.2:
                ctl.delete_namespace(namespaces.pop(ns))
            else:
                namespaces[ns] = namespace(ns, **random_labels(rng))
                ctl.update_namespace(namespaces[ns])
        else:
            key = (ns, f"np{rng.randrange(6)}")
            if key in policies and rng.random() < 0.3:
                ctl.delete_network_policy(policies.pop(key))
            else:
                policies[key] = policy(ns, key[1], random_selector(rng),
                                       ingress=[{"from": [random_peer(rng)]}],
                                       egress=[{"to": [random_peer(rng)]}] if rng.random() < 0.5
                                       else None)
                ctl.update_network_policy(policies[key])

    fresh = RecordingStore()
    scratch = NetworkPolicyController(fresh)
    with scratch.batch():
        for obj in namespaces.values():
            scratch.add_namespace(obj)
        for obj in policies.values():
            scratch.add_network_policy(obj)
        for obj in pods.values():
            scratch.add_pod(obj)
    assert store.objects == fresh.objects
    assert len(ctl.index) == len(scratch.index)
