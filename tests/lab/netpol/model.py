"""The model every case runs against, as upstream's netpol suite defines it.

Namespaces x, y, z (label ns=<name>), pods a, b, c in each (label pod=<name>), each pod
serving TCP, UDP and SCTP on ports 80 and 81 with named container ports
serve-<port>-<proto> (upstream gates SCTP behind a feature; the lab's workload speaks
the SCTP association set-up over raw sockets where the kernel has no SCTP).
Pods are spread so that every node holds one pod of every namespace and every namespace
spans every node: each case exercises same-node and cross-node enforcement.
"""

from __future__ import annotations

from typing import Any

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
PORTS = (80, 81)
PROTOCOLS = ("tcp", "udp", "sctp")  # served by every pod
# Probed in every case: TCP and UDP. SCTP (raw-socket set-up here, costlier per probe)
# only in the cases that ask for `EVERY_COMBO`: a third protocol in every round slowed
# rounds past the suite's 2 s convergence budget on a loaded 2-core machine.
PROBED_BY_DEFAULT = ("tcp", "udp")
NODES = ("node1", "node2", "node3")

# Latin square: namespace i, pod j on node (i + j) mod 3.
PLACEMENT = {f"{ns}/{pod}": NODES[(i + j) % len(NODES)]
             for i, ns in enumerate(NAMESPACES) for j, pod in enumerate(POD_NAMES)}

POD_KEYS = tuple(PLACEMENT)  # "x/a", "x/b", ... in model order

Combo = tuple[str, int]  # (protocol, port)
ALL_COMBOS: tuple[Combo, ...] = tuple((proto, port) for proto in PROBED_BY_DEFAULT
                                      for port in PORTS)
EVERY_COMBO: tuple[Combo, ...] = tuple((proto, port) for proto in PROTOCOLS for port in PORTS)


def port_name(port: int, proto: str) -> str:
    return f"serve-{port}-{proto}"


def namespace_labels(ns: str) -> dict[str, str]:
    return {"ns": ns}


def pod_labels(pod: str) -> dict[str, str]:
    return {"pod": pod}


def namespace_manifest(ns: str) -> dict[str, Any]:
    return {"metadata": {"name": ns, "labels": namespace_labels(ns)}}


def pod_manifest(key: str) -> dict[str, Any]:
    """A pod whose single container (no command) runs the lab's echo server on every
    declared containerPort."""
    ns, name = key.split("/")
    ports = [{"name": port_name(port, proto), "containerPort": port,
              "protocol": proto.upper()} for port in PORTS for proto in PROTOCOLS]
    return {"metadata": {"name": name, "namespace": ns, "labels": pod_labels(name)},
            "spec": {"nodeName": PLACEMENT[key], "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "cont", "image": "agnhost", "ports": ports}]}}
