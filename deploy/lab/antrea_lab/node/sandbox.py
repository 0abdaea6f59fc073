"""Pod sandboxes: the pod's netns plus a record on disk of everything needed to tear it down.

``<pod dir>/<ns>_<name>_<uid>/sandbox.json`` keeps the netns name, the sandbox id used as
CNI_CONTAINERID and the CNI result, so a kubelet that restarts (or ``antrea-lab down``
after a crash) can run CNI DEL and delete the netns of pods it no longer knows.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyroute2 import NetNS

from antrea_lab.node import netns

log = logging.getLogger("antrea.lab.sandbox")

RECORD = "sandbox.json"


def pod_netns_name(lab: str, uid: str) -> str:
    return f"antrea-{lab}-pod-{uid.replace('-', '')[:12]}"


def pod_dir_name(namespace: str, name: str, uid: str) -> str:
    return f"{namespace}_{name}_{uid}"


@dataclass
class Sandbox:
    uid: str
    namespace: str
    name: str
    dir: str
    netns: str  # "" for hostNetwork pods
    sandbox_id: str = field(default_factory=lambda: secrets.token_hex(32))
    host_network: bool = False
    cni_result: dict[str, Any] | None = None
    pod_ips: list[str] = field(default_factory=list)
    network_torn_down: bool = False
    start_time: str = ""

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def netns_path(self) -> str:
        return netns.path(self.netns) if self.netns else ""

    def save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / (RECORD + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(self.path / RECORD)

    @classmethod
    def load(cls, pod_path: Path) -> Sandbox | None:
        try:
            return cls(**json.loads((pod_path / RECORD).read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    @classmethod
    def new(cls, lab: str, pod_root: Path, pod: dict[str, Any]) -> Sandbox:
        meta = pod["metadata"]
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        return cls(
            uid=meta["uid"],
            namespace=meta["namespace"],
            name=meta["name"],
            dir=str(pod_root / pod_dir_name(meta["namespace"], meta["name"], meta["uid"])),
            netns="" if host_network else pod_netns_name(lab, meta["uid"]),
            host_network=host_network,
        )

    def ensure_netns(self) -> None:
        """Create the pod netns with loopback up (what a pause container provides)."""
        if not self.netns:
            return
        netns.ensure(self.netns)
        with NetNS(self.netns) as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")

    def delete_netns(self) -> None:
        if self.netns:
            netns.delete(self.netns)

    def remove_dir(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def load_all(pod_root: Path) -> list[Sandbox]:
    """Every sandbox recorded under a kubelet's --pod-dir."""
    if not pod_root.is_dir():
        return []
    found = []
    for child in sorted(pod_root.iterdir()):
        sb = Sandbox.load(child) if child.is_dir() else None
        if sb is not None:
            found.append(sb)
    return found


def remove_all(pod_root: Path, grace: float = 2.0) -> list[str]:
    """Stop every recorded container and delete every recorded pod netns (no CNI DEL).

    For tearing a whole lab down when its kubelet is gone; returns the netns deleted.
    """
    from antrea_lab.node.containers import Container  # containers imports nothing of ours

    removed = []
    for sb in load_all(pod_root):
        for state in sb.path.glob("*.state.json"):
            Container({"name": state.name[: -len(".state.json")]}, sb.path).stop(grace)
        if sb.netns and netns.delete(sb.netns):
            removed.append(sb.netns)
    return removed
