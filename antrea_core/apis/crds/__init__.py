"""Antrea's CustomResourceDefinitions, one YAML file each: the single source for the
generated manifest (hack/gen-manifests.py), the lab (antrea_lab.cluster) and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DIR = Path(__file__).resolve().parent


def definitions() -> list[dict[str, Any]]:
    """Every CRD as a fresh dict (callers may mutate it), in file-name order."""
    return [yaml.safe_load(f.read_text()) for f in sorted(DIR.glob("*.yaml"))]


CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def install(raw: Any, timeout: float = 30.0) -> list[str]:
    """Create or update every CRD through the API (idempotent) and wait until each is
    Established and its resources are served. `raw`: an `antrea_core.k8s.rawclient.
    RawClient`. Returns the CRD names; raises TimeoutError naming the ones not ready."""
    import time

    from kubernetes.client.exceptions import ApiException

    names = []
    for crd in definitions():
        name = crd["metadata"]["name"]
        names.append(name)
        try:
            raw.request("POST", CRD_PATH, body=crd)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = raw.request("GET", f"{CRD_PATH}/{name}")
            if current.get("spec") != crd["spec"]:
                crd["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                raw.request("PUT", f"{CRD_PATH}/{name}", body=crd)
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        pending = [n for n in pending if not _served(raw, n)]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRDs not established after {timeout:.0f}s: "
                               f"{', '.join(pending)}")
        time.sleep(0.2)
    return names


def _served(raw: Any, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    crd = raw.request("GET", f"{CRD_PATH}/{name}")
    conditions = (crd.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "Established" and c.get("status") == "True"
               for c in conditions):
        return False
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("served"))
    try:
        raw.request("GET", f"/apis/{spec['group']}/{version}/{spec['names']['plural']}",
                    {"limit": 1})
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
