"""Services: defaults, validation, ClusterIP and NodePort allocation."""

from __future__ import annotations

import re
from typing import Any

from .allocators import IPAllocator, PortAllocator
from .errors import FieldError
from .strategy import Obj, Strategy, spec_of
from .validation import dns1123_label

_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def _needs_ip(spec: Obj) -> bool:
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None"


def _needs_node_ports(spec: Obj) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def _needs_health_check_port(spec: Obj) -> bool:
    """Kubernetes gives LoadBalancer Services with externalTrafficPolicy Local a
    healthCheckNodePort (unless allocateLoadBalancerNodePorts is off and none is set,
    which this lab does not model)."""
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _port_key(p: dict[str, Any]) -> tuple[Any, Any]:
    return p.get("port"), p.get("protocol", "TCP")


class ServiceStrategy(Strategy):
    def __init__(self, ips: IPAllocator, ports: PortAllocator) -> None:
        self.ips = ips
        self.ports = ports

    def default(self, obj: Obj) -> None:
        spec = spec_of(obj)
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "targetPort" not in p and "port" in p:
                    p["targetPort"] = p["port"]
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
            if spec.get("clusterIP") and not spec.get("clusterIPs"):
                spec["clusterIPs"] = [spec["clusterIP"]]
        if _needs_node_ports(spec):
            spec.setdefault("externalTrafficPolicy", "Cluster")

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_update(self, obj: Obj, old: Obj) -> None:
        spec, old_spec = spec_of(obj), spec_of(old)
        # Clients that replace a Service without its allocated fields keep them.
        if not spec.get("clusterIP") and old_spec.get("clusterIP") \
                and spec.get("type") != "ExternalName":
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = list(old_spec.get("clusterIPs") or [old_spec["clusterIP"]])
        old_check = old_spec.get("healthCheckNodePort")
        if _needs_health_check_port(spec) and not spec.get("healthCheckNodePort") and old_check:
            spec["healthCheckNodePort"] = old_check
        elif not _needs_health_check_port(spec) and spec.get("healthCheckNodePort") == old_check:
            spec.pop("healthCheckNodePort", None)  # no longer Local: released on commit
        if _needs_node_ports(spec):
            old_ports = {_port_key(p): p.get("nodePort") for p in old_spec.get("ports") or []}
            for p in spec.get("ports") or []:
                if isinstance(p, dict) and not p.get("nodePort") and old_ports.get(_port_key(p)):
                    p["nodePort"] = old_ports[_port_key(p)]

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        spec = spec_of(obj)
        errs: list[FieldError] = []
        stype = spec.get("type")
        if stype not in _TYPES:
            errs.append(FieldError("spec.type", f'Unsupported value: "{stype}": supported '
                                   'values: "ClusterIP", "ExternalName", "LoadBalancer", '
                                   '"NodePort"', "FieldValueNotSupported"))
        if stype == "ExternalName" and not spec.get("externalName"):
            errs.append(FieldError("spec.externalName", "Required value", "FieldValueRequired"))
        ports = spec.get("ports") or []
        if not isinstance(ports, list):
            return [*errs, FieldError("spec.ports", "Invalid value: must be a list")]
        if not ports and stype != "ExternalName" and spec.get("clusterIP") != "None":
            errs.append(FieldError("spec.ports", "Required value", "FieldValueRequired"))
        names: set[str] = set()
        for i, p in enumerate(ports):
            path = f"spec.ports[{i}]"
            if not isinstance(p, dict):
                errs.append(FieldError(path, "Invalid value: must be an object"))
                continue
            name = p.get("name")
            if len(ports) > 1 and not name:
                errs.append(FieldError(f"{path}.name", "Required value", "FieldValueRequired"))
            elif name:
                msg = dns1123_label(str(name))
                if msg:
                    errs.append(FieldError(f"{path}.name", f'Invalid value: "{name}": {msg}'))
                elif name in names:
                    errs.append(FieldError(f"{path}.name", f'Duplicate value: "{name}"',
                                           "FieldValueDuplicate"))
                names.add(str(name))
            port = p.get("port")
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                errs.append(FieldError(f"{path}.port", f"Invalid value: {port}: must be "
                                       "between 1 and 65535, inclusive"))
            if p.get("protocol") not in _PROTOCOLS:
                errs.append(FieldError(f"{path}.protocol",
                                       f'Unsupported value: "{p.get("protocol")}": supported '
                                       'values: "SCTP", "TCP", "UDP"', "FieldValueNotSupported"))
            tp = p.get("targetPort")
            if isinstance(tp, int) and not isinstance(tp, bool):
                if not 0 < tp < 65536:
                    errs.append(FieldError(f"{path}.targetPort", f"Invalid value: {tp}: must "
                                           "be between 1 and 65535, inclusive"))
            elif isinstance(tp, str) and not (len(tp) <= 15 and _IANA_SVC_NAME.match(tp)):
                errs.append(FieldError(f"{path}.targetPort",
                                       f'Invalid value: "{tp}": must be a valid port name'))
            if p.get("nodePort") and not _needs_node_ports(spec):
                errs.append(FieldError(f"{path}.nodePort", "Forbidden: may not be used when "
                                       f"`type` is '{stype}'", "FieldValueForbidden"))
        if spec.get("healthCheckNodePort") and not _needs_health_check_port(spec):
            errs.append(FieldError("spec.healthCheckNodePort", "Invalid value: "
                                   f"{spec['healthCheckNodePort']}: may only be set when "
                                   "`type` is 'LoadBalancer' and `externalTrafficPolicy` is "
                                   "'Local'"))
        if old is not None:
            old_ip = spec_of(old).get("clusterIP")
            new_ip = spec.get("clusterIP")
            if old_ip and new_ip and old_ip != new_ip and spec.get("type") != "ExternalName":
                errs.append(FieldError("spec.clusterIPs[0]",
                                       f'Invalid value: ["{new_ip}"]: may not change once set'))
        return errs

    # --- allocation --------------------------------------------------------------------

    def _take_ports(self, obj: Obj, skip: set[int]) -> list[int]:
        """Allocate the nodePorts `obj` needs (except `skip`, already held); all or none."""
        spec = spec_of(obj)
        taken: list[int] = []
        if not _needs_node_ports(spec):
            return taken
        name = obj["metadata"]["name"]
        try:
            for i, p in enumerate(spec.get("ports") or []):
                want = p.get("nodePort")
                if want and want in skip:
                    continue
                got = self.ports.allocate(want or None, field=f"spec.ports[{i}].nodePort",
                                          name=name)
                taken.append(got)
                p["nodePort"] = got
            want = spec.get("healthCheckNodePort")
            if _needs_health_check_port(spec) and not (want and want in skip):
                got = self.ports.allocate(want or None, field="spec.healthCheckNodePort",
                                          name=name)
                taken.append(got)
                spec["healthCheckNodePort"] = got
        except Exception:
            for port in taken:
                self.ports.release(port)
            raise
        return taken

    def commit_create(self, obj: Obj) -> None:
        spec = spec_of(obj)
        name = obj["metadata"]["name"]
        ip: str | None = None
        if _needs_ip(spec):
            ip = self.ips.allocate(spec.get("clusterIP") or None, name=name)
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        try:
            self._take_ports(obj, set())
        except Exception:
            if ip:
                self.ips.release(ip)
            raise

    def commit_update(self, obj: Obj, old: Obj) -> None:
        spec, old_spec = spec_of(obj), spec_of(old)
        held = _node_ports(old_spec)
        new_ip: str | None = None
        if _needs_ip(spec) and not spec.get("clusterIP"):
            new_ip = self.ips.allocate(None, name=obj["metadata"]["name"])
            spec["clusterIP"], spec["clusterIPs"] = new_ip, [new_ip]
        try:
            self._take_ports(obj, held)
        except Exception:
            if new_ip:
                self.ips.release(new_ip)
            raise
        for port in held - _node_ports(spec):
            self.ports.release(port)
        old_ip = old_spec.get("clusterIP")
        if old_ip and old_ip != "None" and spec.get("clusterIP") != old_ip:
            self.ips.release(old_ip)

    def after_delete(self, obj: Obj) -> None:
        spec = spec_of(obj)
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            self.ips.release(ip)
        for port in _node_ports(spec):
            self.ports.release(port)

    def mark(self, obj: Obj) -> None:
        """Re-take what a stored Service holds (after a restart)."""
        spec = obj.get("spec") or {}
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            self.ips.mark(ip)
        for port in _node_ports(spec):
            self.ports.mark(port)


def _node_ports(spec: Obj) -> set[int]:
    """Every node port the Service holds: its ports' and its health check's."""
    held = {p["nodePort"] for p in spec.get("ports") or []
            if isinstance(p, dict) and p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        held.add(spec["healthCheckNodePort"])
    return held
