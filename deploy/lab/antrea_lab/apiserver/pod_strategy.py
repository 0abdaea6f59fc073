"""Pods: Kubernetes' defaults, QoS class, validation and spec immutability."""

from __future__ import annotations

import copy
from typing import Any

from .errors import FieldError
from .strategy import Obj, Strategy, spec_of
from .validation import dns1123_label

IMMUTABLE_MSG = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)")

_CONTAINER_LISTS = ("initContainers", "containers")


def _default_container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = str(c.get("image", ""))
    last = image.rsplit("/", 1)[-1]
    tagged = ":" in last and not last.endswith(":latest")
    c.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in last else "Always")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def qos_class(spec: Obj) -> str:
    """Guaranteed: every container limits cpu+memory with requests equal; BestEffort: none set."""
    any_set = False
    guaranteed = True
    for lst in _CONTAINER_LISTS:
        for c in spec.get(lst) or []:
            res = c.get("resources") or {}
            limits, requests = res.get("limits") or {}, res.get("requests") or {}
            if limits or requests:
                any_set = True
            for r in ("cpu", "memory"):
                if r not in limits or str(requests.get(r, limits[r])) != str(limits[r]):
                    guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class PodStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        spec = spec_of(obj)
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("securityContext", {})
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        # What the ServiceAccount admission plugin fills in.
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        for lst in _CONTAINER_LISTS:
            for c in spec.get(lst) or []:
                if isinstance(c, dict):
                    _default_container(c)

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec_of(obj))}

    def validate(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        spec = spec_of(obj)
        errs: list[FieldError] = []
        containers = spec.get("containers")
        if not isinstance(containers, list) or not containers:
            errs.append(FieldError("spec.containers", "Required value", "FieldValueRequired"))
        seen: set[str] = set()
        for lst in _CONTAINER_LISTS:
            items = spec.get(lst) or []
            if not isinstance(items, list):
                errs.append(FieldError(f"spec.{lst}", "Invalid value: must be a list"))
                continue
            for i, c in enumerate(items):
                path = f"spec.{lst}[{i}]"
                if not isinstance(c, dict):
                    errs.append(FieldError(path, "Invalid value: must be an object"))
                    continue
                name = c.get("name")
                if not name:
                    errs.append(FieldError(f"{path}.name", "Required value",
                                           "FieldValueRequired"))
                elif not isinstance(name, str) or dns1123_label(name):
                    errs.append(FieldError(f"{path}.name",
                                           f'Invalid value: "{name}": {dns1123_label(str(name))}'))
                elif name in seen:
                    errs.append(FieldError(f"{path}.name", f'Duplicate value: "{name}"',
                                           "FieldValueDuplicate"))
                else:
                    seen.add(name)
                if not c.get("image") and lst == "containers":
                    errs.append(FieldError(f"{path}.image", "Required value",
                                           "FieldValueRequired"))
                for j, port in enumerate(c.get("ports") or []):
                    cp = port.get("containerPort") if isinstance(port, dict) else None
                    if not isinstance(cp, int) or not 0 < cp < 65536:
                        errs.append(FieldError(f"{path}.ports[{j}].containerPort",
                                               f"Invalid value: {cp}: must be between 1 and "
                                               "65535, inclusive"))
        rp = spec.get("restartPolicy")
        if rp not in ("Always", "OnFailure", "Never"):
            errs.append(FieldError("spec.restartPolicy", f'Unsupported value: "{rp}": supported '
                                   'values: "Always", "OnFailure", "Never"',
                                   "FieldValueNotSupported"))
        if old is not None and not errs:
            errs.extend(_immutability(spec, spec_of(old)))
        return errs


def _masked(spec: Obj) -> Obj:
    """The spec with the mutable fields blanked out, for comparison."""
    out = copy.deepcopy(spec)
    for lst in _CONTAINER_LISTS:
        for c in out.get(lst) or []:
            if isinstance(c, dict):
                c.pop("image", None)
    out.pop("activeDeadlineSeconds", None)
    out.pop("tolerations", None)
    out.pop("terminationGracePeriodSeconds", None)
    return out


def _immutability(spec: Obj, old: Obj) -> list[FieldError]:
    if _masked(spec) != _masked(old):
        return [FieldError("spec", IMMUTABLE_MSG, "FieldValueForbidden")]
    old_tol = old.get("tolerations") or []
    new_tol = spec.get("tolerations") or []
    if any(t not in new_tol for t in old_tol):
        return [FieldError("spec.tolerations", IMMUTABLE_MSG, "FieldValueForbidden")]
    old_ads, new_ads = old.get("activeDeadlineSeconds"), spec.get("activeDeadlineSeconds")
    if old_ads is not None and (new_ads is None or new_ads > old_ads):
        return [FieldError("spec.activeDeadlineSeconds",
                           "Forbidden: must be less than or equal to previous value",
                           "FieldValueForbidden")]
    old_tg = old.get("terminationGracePeriodSeconds")
    new_tg = spec.get("terminationGracePeriodSeconds")
    if new_tg != old_tg and not (old_tg is not None and old_tg < 0 and new_tg == 1):
        return [FieldError("spec", IMMUTABLE_MSG, "FieldValueForbidden")]
    return []
