"""Server-side printing: meta.k8s.io/v1 Tables for `kubectl get`.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever
columns the server sends, so the columns here are the ones kube-apiserver sends for
each kind (kubectl upper-cases the names; priority-1 columns appear with `-o wide`).
Custom resources use their CRD's additionalPrinterColumns.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from typing import Any

from .registry import ResourceInfo

log = logging.getLogger("antrea_lab.apiserver.tables")

Obj = dict[str, Any]
Cell = Any
Column = tuple[str, str, int, str]  # name, type, priority, description

NONE = "<none>"
NAME_DESC = "Name must be unique within a namespace."
AGE_DESC = ("CreationTimestamp is a timestamp representing the server time when this object "
            "was created.")


# ---------------------------------------------------------------------------- time

def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def human_duration(seconds: float) -> str:
    """A duration the way kubectl prints ages: 5s, 3m2s, 15m, 4h10m, 20h, 2d3h, 40d, 3y2d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def _since(value: Any, now: dt.datetime) -> str:
    t = _parse_time(value)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def _age(obj: Obj, now: dt.datetime) -> str:
    return _since((obj.get("metadata") or {}).get("creationTimestamp"), now)


# ---------------------------------------------------------------------------- formatting

def _labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(sel: dict[str, Any] | None) -> str:
    """A LabelSelector as kubectl prints it (`app=web,tier in (a,b)`); `<none>` if empty."""
    if not sel:
        return NONE
    reqs: list[tuple[str, str]] = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for e in sel.get("matchExpressions") or []:
        key, op = e.get("key", ""), e.get("operator", "")
        values = ",".join(sorted(e.get("values") or []))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                "Exists": key, "DoesNotExist": f"!{key}"}.get(op, f"{key} {op} ({values})")
        reqs.append((key, text))
    if not reqs:
        return NONE
    return ",".join(text for _, text in sorted(reqs))


def _more(items: list[str], limit: int = 3) -> str:
    if len(items) <= limit:
        return ",".join(items)
    return ",".join(items[:limit]) + f" + {len(items) - limit} more..."


# ---------------------------------------------------------------------------- per kind

def _pod_row(pod: Obj, now: dt.datetime) -> list[Cell]:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    total = len(spec.get("containers") or [])
    ready = restarts = 0
    last_restart: dt.datetime | None = None
    reason = status.get("reason") or status.get("phase") or ""

    def note_restart(cs: Obj) -> None:
        nonlocal restarts, last_restart
        restarts += int(cs.get("restartCount") or 0)
        finished = _parse_time(((cs.get("lastState") or {}).get("terminated") or {})
                               .get("finishedAt"))
        if finished and (last_restart is None or finished > last_restart):
            last_restart = finished

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        note_restart(cs)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or (
                f"Signal:{term['signal']}" if term.get("signal")
                else f"ExitCode:{term.get('exitCode')}"))
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or init_statuses)}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            note_restart(cs)
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = (f"Signal:{term['signal']}" if term.get("signal")
                          else f"ExitCode:{term.get('exitCode')}")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            ready_cond = any(c.get("type") == "Ready" and c.get("status") == "True"
                             for c in status.get("conditions") or [])
            reason = "Running" if ready_cond else "NotReady"
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    restarts_cell: Cell = restarts
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"
    gates = spec.get("readinessGates") or []
    if gates:
        true_conds = {c.get("type") for c in status.get("conditions") or []
                      if c.get("status") == "True"}
        gates_cell = f"{sum(1 for g in gates if g.get('conditionType') in true_conds)}/{len(gates)}"
    else:
        gates_cell = NONE
    return [meta.get("name", ""), f"{ready}/{total}", reason, restarts_cell, _age(pod, now),
            status.get("podIP") or NONE, spec.get("nodeName") or NONE,
            status.get("nominatedNodeName") or NONE, gates_cell]


def _node_row(node: Obj, now: dt.datetime) -> list[Cell]:
    meta, spec = node.get("metadata") or {}, node.get("spec") or {}
    status = node.get("status") or {}
    states = []
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            states.append("Ready" if c.get("status") == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = set()
    for k, v in (meta.get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/") and k[len("node-role.kubernetes.io/"):]:
            roles.add(k[len("node-role.kubernetes.io/"):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        found = [a.get("address", "") for a in status.get("addresses") or []
                 if a.get("type") == kind]
        return found[0] if found else NONE

    return [meta.get("name", ""), ",".join(states), ",".join(sorted(roles)) or NONE,
            _age(node, now), info.get("kubeletVersion", ""), address("InternalIP"),
            address("ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _service_ports(spec: Obj) -> str:
    out = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            out.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            out.append(f"{p.get('port')}/{proto}")
    return ",".join(out) or NONE


def _service_external_ip(svc: Obj) -> str:
    spec, status = svc.get("spec") or {}, svc.get("status") or {}
    stype = spec.get("type") or "ClusterIP"
    external = list(spec.get("externalIPs") or [])
    if stype == "ExternalName":
        return spec.get("externalName") or NONE
    if stype == "LoadBalancer":
        ingress = [i.get("ip") or i.get("hostname") or ""
                   for i in (status.get("loadBalancer") or {}).get("ingress") or []]
        found = [a for a in ingress + external if a]
        return ",".join(found) if found else "<pending>"
    return ",".join(external) if external else NONE


def _service_row(svc: Obj, now: dt.datetime) -> list[Cell]:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    return [meta.get("name", ""), spec.get("type") or "ClusterIP",
            spec.get("clusterIP") or NONE, _service_external_ip(svc), _service_ports(spec),
            _age(svc, now), _labels(spec.get("selector"))]


def _endpoints_row(ep: Obj, now: dt.datetime) -> list[Cell]:
    items: list[str] = []
    for subset in ep.get("subsets") or []:
        addrs = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            items.extend(addrs)
        for p in ports:
            items.extend(f"{a}:{p.get('port')}" for a in addrs)
    return [(ep.get("metadata") or {}).get("name", ""), _more(items) or NONE, _age(ep, now)]


def _endpointslice_row(es: Obj, now: dt.datetime) -> list[Cell]:
    ports = [str(p["port"]) if p.get("port") is not None else "<unset>"
             for p in es.get("ports") or []]
    addrs = [a for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    return [(es.get("metadata") or {}).get("name", ""), es.get("addressType", ""),
            _more(ports) or "<unset>", _more(addrs) or "<unset>", _age(es, now)]


def _netpol_row(np: Obj, now: dt.datetime) -> list[Cell]:
    return [(np.get("metadata") or {}).get("name", ""),
            format_label_selector((np.get("spec") or {}).get("podSelector")), _age(np, now)]


def _event_row(ev: Obj, now: dt.datetime) -> list[Cell]:
    first = ev.get("firstTimestamp") or ev.get("eventTime")
    last = ((ev.get("series") or {}).get("lastObservedTime") or ev.get("lastTimestamp")
            or first or (ev.get("metadata") or {}).get("creationTimestamp"))
    involved = ev.get("involvedObject") or {}
    source = ev.get("source") or {}
    source_text = source.get("component") or ev.get("reportingComponent") or ""
    if source.get("host"):
        source_text = f"{source_text}, {source['host']}"
    return [_since(last, now), ev.get("type", ""), ev.get("reason", ""),
            f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
            involved.get("fieldPath", ""), source_text, (ev.get("message") or "").strip(),
            _since(first, now) if first else "<unknown>", int(ev.get("count") or 1),
            (ev.get("metadata") or {}).get("name", "")]


def _containers(template_spec: Obj) -> tuple[str, str]:
    cs = template_spec.get("containers") or []
    return (",".join(c.get("name", "") for c in cs) or NONE,
            ",".join(c.get("image", "") for c in cs) or NONE)


def _deployment_row(d: Obj, now: dt.datetime) -> list[Cell]:
    spec, status = d.get("spec") or {}, d.get("status") or {}
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    desired = spec.get("replicas", 1)
    return [(d.get("metadata") or {}).get("name", ""),
            f"{int(status.get('readyReplicas') or 0)}/{desired}",
            int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0),
            _age(d, now), names, images, format_label_selector(spec.get("selector"))]


def _daemonset_row(d: Obj, now: dt.datetime) -> list[Cell]:
    spec, status = d.get("spec") or {}, d.get("status") or {}
    tspec = ((spec.get("template") or {}).get("spec")) or {}
    names, images = _containers(tspec)
    return [(d.get("metadata") or {}).get("name", ""),
            int(status.get("desiredNumberScheduled") or 0),
            int(status.get("currentNumberScheduled") or 0), int(status.get("numberReady") or 0),
            int(status.get("updatedNumberScheduled") or 0),
            int(status.get("numberAvailable") or 0), _labels(tspec.get("nodeSelector")),
            _age(d, now), names, images, format_label_selector(spec.get("selector"))]


def _binding_row(b: Obj, now: dt.datetime) -> list[Cell]:
    ref = b.get("roleRef") or {}
    subjects = b.get("subjects") or []

    def of(kind: str) -> str:
        return ",".join(
            (f"{s.get('namespace')}/{s.get('name')}" if kind == "ServiceAccount"
             else s.get("name", "")) for s in subjects if s.get("kind") == kind)

    return [(b.get("metadata") or {}).get("name", ""), f"{ref.get('kind')}/{ref.get('name')}",
            _age(b, now), of("User"), of("Group"), of("ServiceAccount")]


def _name(o: Obj) -> str:
    return (o.get("metadata") or {}).get("name", "")


_S, _I, _D = "string", "integer", "date"
_NAME: Column = ("Name", _S, 0, NAME_DESC)
_AGE: Column = ("Age", _S, 0, AGE_DESC)

# kind -> (columns, row function); rows carry one cell per column, in order.
PRINTERS: dict[tuple[str, str], tuple[list[Column], Callable[[Obj, dt.datetime], list[Cell]]]] = {
    ("", "Pod"): ([_NAME, ("Ready", _S, 0, "The aggregate readiness state of this pod for "
                                        "accepting traffic."),
                   ("Status", _S, 0, "The aggregate status of the containers in this pod."),
                   ("Restarts", _S, 0, "The number of times the containers in this pod have "
                                       "been restarted and when the last container in this pod "
                                       "has restarted."),
                   _AGE, ("IP", _S, 1, "IP address allocated to the pod."),
                   ("Node", _S, 1, "Name of the Node this pod is assigned to."),
                   ("Nominated Node", _S, 1, "Name of the node the pod is nominated to."),
                   ("Readiness Gates", _S, 1, "The readiness gates of the pod.")], _pod_row),
    ("", "Node"): ([_NAME, ("Status", _S, 0, "The status of the node"),
                    ("Roles", _S, 0, "The roles of the node"), _AGE,
                    ("Version", _S, 0, "Kubelet Version reported by the node."),
                    ("Internal-IP", _S, 1, "List of internal IPs in the node."),
                    ("External-IP", _S, 1, "List of external IPs in the node."),
                    ("OS-Image", _S, 1, "OS Image reported by the node."),
                    ("Kernel-Version", _S, 1, "Kernel Version reported by the node."),
                    ("Container-Runtime", _S, 1, "Container Runtime Version reported by the "
                                                 "node.")], _node_row),
    ("", "Namespace"): ([_NAME, ("Status", _S, 0, "The status of the namespace"), _AGE],
                        lambda o, now: [_name(o), (o.get("status") or {}).get("phase", ""),
                                        _age(o, now)]),
    ("", "Service"): ([_NAME, ("Type", _S, 0, "The type of the service."),
                       ("Cluster-IP", _S, 0, "The cluster IP of the service."),
                       ("External-IP", _S, 0, "The external IP of the service."),
                       ("Port(s)", _S, 0, "The ports of the service."), _AGE,
                       ("Selector", _S, 1, "The selector of the service.")], _service_row),
    ("", "Endpoints"): ([_NAME, ("Endpoints", _S, 0, "Endpoints of the service."), _AGE],
                        _endpoints_row),
    ("discovery.k8s.io", "EndpointSlice"): (
        [_NAME, ("AddressType", _S, 0, "The type of addresses in this slice."),
         ("Ports", _S, 0, "The ports of the endpoints."),
         ("Endpoints", _S, 0, "Addresses of the endpoints."), _AGE], _endpointslice_row),
    ("networking.k8s.io", "NetworkPolicy"): (
        [_NAME, ("Pod-Selector", _S, 0, "The pods the policy applies to."), _AGE], _netpol_row),
    ("", "ServiceAccount"): ([_NAME, ("Secrets", _I, 0, "Secrets of the service account."),
                              _AGE],
                             lambda o, now: [_name(o), len(o.get("secrets") or []),
                                             _age(o, now)]),
    ("", "ConfigMap"): ([_NAME, ("Data", _I, 0, "Number of keys."), _AGE],
                        lambda o, now: [_name(o), len(o.get("data") or {})
                                        + len(o.get("binaryData") or {}), _age(o, now)]),
    ("", "Secret"): ([_NAME, ("Type", _S, 0, "The type of the secret."),
                      ("Data", _I, 0, "The number of keys in the secret."), _AGE],
                     lambda o, now: [_name(o), o.get("type") or "Opaque",
                                     len(o.get("data") or {}), _age(o, now)]),
    ("", "Event"): ([("Last Seen", _S, 0, "Time since the event was last seen."),
                     ("Type", _S, 0, "Type of the event."),
                     ("Reason", _S, 0, "Why the event happened."),
                     ("Object", _S, 0, "The object this event is about."),
                     ("Subobject", _S, 1, "The part of the object this event is about."),
                     ("Source", _S, 1, "The component reporting the event."),
                     ("Message", _S, 0, "A human-readable description."),
                     ("First Seen", _S, 1, "Time since the event was first seen."),
                     ("Count", _I, 1, "How many times the event happened."),
                     ("Name", _S, 1, NAME_DESC)], _event_row),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (
        [_NAME, ("Created At", _D, 0, AGE_DESC)],
        lambda o, now: [_name(o), (o.get("metadata") or {}).get("creationTimestamp")]),
    ("coordination.k8s.io", "Lease"): (
        [_NAME, ("Holder", _S, 0, "The holder of the lease."), _AGE],
        lambda o, now: [_name(o), (o.get("spec") or {}).get("holderIdentity") or "",
                        _age(o, now)]),
    ("apps", "Deployment"): ([_NAME, ("Ready", _S, 0, "Ready replicas / desired replicas."),
                              ("Up-to-date", _I, 0, "Replicas updated to the desired state."),
                              ("Available", _I, 0, "Replicas available to users."), _AGE,
                              ("Containers", _S, 1, "Names of the containers."),
                              ("Images", _S, 1, "Images of the containers."),
                              ("Selector", _S, 1, "Label selector of the pods.")],
                             _deployment_row),
    ("apps", "DaemonSet"): ([_NAME, ("Desired", _I, 0, "Nodes that should run the pod."),
                             ("Current", _I, 0, "Nodes running the pod."),
                             ("Ready", _I, 0, "Nodes with a ready pod."),
                             ("Up-to-date", _I, 0, "Nodes running the updated pod."),
                             ("Available", _I, 0, "Nodes with an available pod."),
                             ("Node Selector", _S, 0, "The node selector of the pods."), _AGE,
                             ("Containers", _S, 1, "Names of the containers."),
                             ("Images", _S, 1, "Images of the containers."),
                             ("Selector", _S, 1, "Label selector of the pods.")],
                            _daemonset_row),
}
for _kind in ("Role", "ClusterRole"):
    PRINTERS[("rbac.authorization.k8s.io", _kind)] = (
        [_NAME, ("Created At", _D, 0, AGE_DESC)],
        lambda o, now: [_name(o), (o.get("metadata") or {}).get("creationTimestamp")])
for _kind in ("RoleBinding", "ClusterRoleBinding"):
    PRINTERS[("rbac.authorization.k8s.io", _kind)] = (
        [_NAME, ("Role", _S, 0, "The role of the binding."), _AGE,
         ("Users", _S, 1, "Users bound."), ("Groups", _S, 1, "Groups bound."),
         ("ServiceAccounts", _S, 1, "ServiceAccounts bound.")], _binding_row)

DEFAULT_PRINTER: tuple[list[Column], Callable[[Obj, dt.datetime], list[Cell]]] = (
    [_NAME, _AGE], lambda o, now: [_name(o), _age(o, now)])


# ---------------------------------------------------------------------------- JSONPath

_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+|\*)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Values at a simple JSONPath (`.a.b`, `.a[0].b`, `.a[*].b`, `.a['x.y']`)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    current = [obj]
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            log.debug("unsupported JSONPath path=%s at=%d", path, pos)
            return []
        pos = m.end()
        key = m.group(1) or m.group(3) or m.group(4)
        idx = m.group(2)
        nxt: list[Any] = []
        for c in current:
            if key is not None:
                if isinstance(c, dict) and key in c:
                    nxt.append(c[key])
            elif idx == "*":
                if isinstance(c, list):
                    nxt.extend(c)
                elif isinstance(c, dict):
                    nxt.extend(c.values())
            elif isinstance(c, list) and int(idx) < len(c):
                nxt.append(c[int(idx)])
        current = nxt
    return current


def _custom_cell(col: dict[str, Any], obj: Obj, now: dt.datetime) -> Cell:
    values = [v for v in jsonpath(obj, col.get("jsonPath", "")) if v is not None]
    if not values:
        return None
    ctype = col.get("type", "string")
    if len(values) > 1:
        return ",".join(str(v) for v in values)
    v = values[0]
    if ctype == "date":
        return _since(v, now)
    if ctype == "integer" and isinstance(v, int | float) and not isinstance(v, bool):
        return int(v)
    if ctype == "number" and isinstance(v, int | float) and not isinstance(v, bool):
        return v
    if ctype == "boolean" and isinstance(v, bool):
        return v
    return v if isinstance(v, str) else str(v)


def _custom_printer(info: ResourceInfo
                    ) -> tuple[list[dict[str, Any]], Callable[[Obj, dt.datetime], list[Cell]]]:
    cols = list(info.printer_columns) or [{"name": "Age", "type": "date",
                                           "jsonPath": ".metadata.creationTimestamp",
                                           "description": AGE_DESC}]
    defs = [_column_def(_NAME)]
    for c in cols:
        d = {"name": c.get("name", ""), "type": c.get("type", "string"),
             "format": c.get("format", ""), "description": c.get("description", ""),
             "priority": int(c.get("priority", 0))}
        if d["type"] == "date":
            d["type"] = "string"  # cells are human ages, as kube sends them
        defs.append(d)

    def row(o: Obj, now: dt.datetime) -> list[Cell]:
        return [_name(o)] + [_custom_cell(c, o, now) for c in cols]
    return defs, row


def _column_def(col: Column) -> dict[str, Any]:
    name, ctype, priority, desc = col
    return {"name": name, "type": ctype, "format": "name" if col is _NAME else "",
            "description": desc, "priority": priority}


# ---------------------------------------------------------------------------- Table

def table_for(info: ResourceInfo, objects: list[Obj], include_object: str = "Metadata",
              now: dt.datetime | None = None) -> Obj:
    """A meta.k8s.io/v1 Table of `objects`; the caller sets metadata.resourceVersion.

    `include_object` is the request's includeObject: None, Metadata (default) or Object.
    """
    now = now or dt.datetime.now(dt.UTC)
    if info.builtin:
        columns, row_of = PRINTERS.get((info.group, info.kind), DEFAULT_PRINTER)
        defs = [_column_def(c) for c in columns]
    else:
        defs, row_of = _custom_printer(info)
    rows = []
    for o in objects:
        row: Obj = {"cells": row_of(o, now)}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o.get("metadata") or {}}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": defs, "rows": rows}
