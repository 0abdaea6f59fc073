"""Where a lab keeps its state: the directory layout of docs/lab-internals.md, and lab.json."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path("/var/lib/antrea-lab")
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$")

CLUSTER_CIDR = "10.244.0.0/16"
NODE_CIDR_MASK = 24
SERVICE_CIDR = "10.96.0.0/16"
NODE_PORT_RANGE = "30000-32767"


class LabError(RuntimeError):
    """A lab operation that cannot go on; the message says what to do."""


def validate_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise LabError(f"lab name {name!r}: use 1-16 lower-case letters, digits or '-'")
    return name


@dataclass
class LabState:
    """lab.json: what `up` created, so `down` removes exactly that, even after a crash."""

    name: str
    api_port: int
    nodes: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    # How each lab-started component was launched (argv, netns), for `restart`.
    commands: dict[str, Any] = field(default_factory=dict)
    cni: str = "bridge"
    topology: dict[str, Any] = field(default_factory=dict)


class LabDir:
    """Paths of one lab (`$ANTREA_LAB_DIR` or /var/lib/antrea-lab/<name>)."""

    def __init__(self, name: str, root: Path | None = None) -> None:
        self.name = validate_name(name)
        env = os.environ.get("ANTREA_LAB_DIR")
        self.path = root or (Path(env) if env else DEFAULT_ROOT / name)

    # -- files -------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.path / "lab.json"

    @property
    def pki(self) -> Path:
        return self.path / "pki"

    @property
    def tokens(self) -> Path:
        return self.path / "tokens.csv"

    @property
    def kubeconfig(self) -> Path:
        return self.path / "kubeconfig"

    @property
    def apiserver_data(self) -> Path:
        return self.path / "apiserver"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def pids(self) -> Path:
        return self.path / "pids"

    def node(self, node: str) -> Path:
        return self.path / "nodes" / node

    def node_kubeconfig(self, node: str) -> Path:
        return self.node(node) / "kubeconfig"

    def ovs_dirs(self, node: str) -> Path:
        return self.node(node) / "ovs"

    def cni_conf_dir(self, node: str) -> Path:
        return self.node(node) / "cni" / "net.d"

    def cni_bin_dir(self, node: str) -> Path:
        return self.node(node) / "cni" / "bin"

    def pod_dir(self, node: str) -> Path:
        return self.node(node) / "pods"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    # -- netns names -------------------------------------------------------------------
    def netns(self, role: str) -> str:
        return f"antrea-{self.name}-{role}"

    def pod_netns(self, pod_uid: str) -> str:
        return f"antrea-{self.name}-pod-{pod_uid.replace('-', '')[:12]}"

    # -- state -------------------------------------------------------------------------
    def load(self) -> LabState | None:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        return LabState(**data)

    def save(self, state: LabState) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2, sort_keys=True))
        tmp.replace(self.state_file)
