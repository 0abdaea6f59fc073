"""NetworkPolicy validation: the checks kube-apiserver makes that the controller relies on."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .errors import FieldError
from .strategy import Obj, Strategy, spec_of

_PROTOCOLS = ("TCP", "UDP", "SCTP")
_POLICY_TYPES = ("Ingress", "Egress")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def validate_label_selector(sel: Any, path: str) -> list[FieldError]:
    if sel is None:
        return []
    if not isinstance(sel, dict):
        return [FieldError(path, "Invalid value: must be a label selector object")]
    errs: list[FieldError] = []
    labels = sel.get("matchLabels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        errs.append(FieldError(f"{path}.matchLabels", "Invalid value: must map strings to "
                                                       "strings"))
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, dict) or not expr.get("key"):
            errs.append(FieldError(f"{p}.key", "Required value", "FieldValueRequired"))
            continue
        op, values = expr.get("operator"), expr.get("values") or []
        if op not in _OPERATORS:
            errs.append(FieldError(f"{p}.operator", f'Unsupported value: "{op}": supported '
                                   'values: "In", "NotIn", "Exists", "DoesNotExist"',
                                   "FieldValueNotSupported"))
        elif op in ("In", "NotIn") and not values:
            errs.append(FieldError(f"{p}.values", "Required value: must be specified when "
                                   "`operator` is 'In' or 'NotIn'", "FieldValueRequired"))
        elif op in ("Exists", "DoesNotExist") and values:
            errs.append(FieldError(f"{p}.values", "Forbidden: may not be specified when "
                                   "`operator` is 'Exists' or 'DoesNotExist'",
                                   "FieldValueForbidden"))
    return errs


def _validate_port(port: Any, path: str) -> list[FieldError]:
    if not isinstance(port, dict):
        return [FieldError(path, "Invalid value: must be an object")]
    errs: list[FieldError] = []
    proto = port.get("protocol", "TCP")
    if proto not in _PROTOCOLS:
        errs.append(FieldError(f"{path}.protocol", f'Unsupported value: "{proto}": supported '
                               'values: "SCTP", "TCP", "UDP"', "FieldValueNotSupported"))
    value, end = port.get("port"), port.get("endPort")
    if isinstance(value, bool) or (value is not None and not isinstance(value, int | str)):
        errs.append(FieldError(f"{path}.port", f"Invalid value: {value!r}: must be a port "
                                               "number or name"))
    elif isinstance(value, int) and not 0 < value < 65536:
        errs.append(FieldError(f"{path}.port", f"Invalid value: {value}: must be between 1 "
                                               "and 65535, inclusive"))
    elif isinstance(value, str) and not (len(value) <= 15 and _IANA_SVC_NAME.match(value)):
        errs.append(FieldError(f"{path}.port", f'Invalid value: "{value}": must be a valid '
                                               "port name"))
    if end is not None:
        if not isinstance(value, int):
            errs.append(FieldError(f"{path}.endPort", "Forbidden: may not be specified when "
                                   "`port` is non-numeric", "FieldValueForbidden"))
        elif not isinstance(end, int) or end < value:
            errs.append(FieldError(f"{path}.endPort", f"Invalid value: {end}: must be greater "
                                   "than or equal to `port`"))
    return errs


def _validate_peer(peer: Any, path: str) -> list[FieldError]:
    if not isinstance(peer, dict):
        return [FieldError(path, "Invalid value: must be an object")]
    selectors = [k for k in ("podSelector", "namespaceSelector") if peer.get(k) is not None]
    block = peer.get("ipBlock")
    if block is None and not selectors:
        return [FieldError(path, "Required value: must specify a peer", "FieldValueRequired")]
    if block is not None and selectors:
        return [FieldError(path, "Forbidden: may not specify more than 1 peer type",
                           "FieldValueForbidden")]
    errs: list[FieldError] = []
    for key in selectors:
        errs += validate_label_selector(peer[key], f"{path}.{key}")
    if block is not None:
        cidr = block.get("cidr") if isinstance(block, dict) else None
        if not cidr:
            return [FieldError(f"{path}.ipBlock.cidr", "Required value", "FieldValueRequired")]
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return [FieldError(f"{path}.ipBlock.cidr", f'Invalid value: "{cidr}": must be a '
                                                       "valid CIDR")]
        for j, ex in enumerate(block.get("except") or []):
            p = f"{path}.ipBlock.except[{j}]"
            try:
                sub = ipaddress.ip_network(ex, strict=False)
            except ValueError:
                errs.append(FieldError(p, f'Invalid value: "{ex}": must be a valid CIDR'))
                continue
            if sub.version != net.version or sub == net or not sub.subnet_of(net):  # type: ignore[arg-type]
                errs.append(FieldError(p, f'Invalid value: "{ex}": must be a strict subset '
                                          "of `cidr`"))
    return errs


class NetworkPolicyStrategy(Strategy):
    reset_status_on_create = False

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        spec = spec_of(obj)
        errs = validate_label_selector(spec.get("podSelector"), "spec.podSelector")
        types = spec.get("policyTypes") or []
        for i, t in enumerate(types if isinstance(types, list) else [types]):
            if t not in _POLICY_TYPES:
                errs.append(FieldError(f"spec.policyTypes[{i}]", f'Unsupported value: "{t}": '
                                       'supported values: "Ingress", "Egress"',
                                       "FieldValueNotSupported"))
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            rules = spec.get(direction) or []
            if not isinstance(rules, list):
                errs.append(FieldError(f"spec.{direction}", "Invalid value: must be a list"))
                continue
            for i, rule in enumerate(rules):
                path = f"spec.{direction}[{i}]"
                if not isinstance(rule, dict):
                    errs.append(FieldError(path, "Invalid value: must be an object"))
                    continue
                for j, port in enumerate(rule.get("ports") or []):
                    errs += _validate_port(port, f"{path}.ports[{j}]")
                for j, peer in enumerate(rule.get(peers_key) or []):
                    errs += _validate_peer(peer, f"{path}.{peers_key}[{j}]")
        return errs
