"""DEL requests antrea-cni could not deliver because the agent was down.

Decision: a DEL that cannot reach the agent is written here and answered with success.
Failing it instead would keep kubelet retrying StopPodSandbox for as long as the agent is
down (forever if it never returns) while there is little to clean: the pod's veth dies
with its netns; what remains (IP allocation, OVS port, flows) is agent state, released
when the agent replays this queue at start-up (and by its stale-allocation sweep).
Container IDs are never reused, so replaying a DEL late cannot hit a newer sandbox.

One JSON file per (container id, ifname), written atomically so a crash never leaves a
half record the agent would trip over.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("antrea.agent.cniserver")

QUEUE_DIRNAME = "cni-del-queue"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class DeferredDel:
    """The CNI environment and stdin of one DEL, as antrea-cni received them."""

    container_id: str
    netns: str
    ifname: str
    args: str
    path: str
    network_configuration: str


def queue_dir_for(socket_path: str | os.PathLike[str]) -> Path:
    """The queue lives next to the agent's CNI socket, so both sides agree on it."""
    return Path(socket_path).parent / QUEUE_DIRNAME


def _file_name(container_id: str, ifname: str) -> str:
    return _UNSAFE.sub("_", f"{container_id}-{ifname}") + ".json"


def record(queue_dir: Path, entry: DeferredDel) -> Path:
    """Store ``entry``; a later record for the same attachment replaces the earlier one."""
    queue_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = queue_dir / _file_name(entry.container_id, entry.ifname)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(json.dumps(asdict(entry)).encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def pending(queue_dir: Path) -> list[tuple[Path, DeferredDel]]:
    """Queued DELs, oldest first; unreadable records are dropped with a warning."""
    if not queue_dir.is_dir():
        return []
    files = [p for p in queue_dir.iterdir() if p.suffix == ".json" and not p.name.startswith(".")]
    out = []
    for path in sorted(files, key=lambda p: p.stat().st_mtime):
        try:
            out.append((path, DeferredDel(**json.loads(path.read_text()))))
        except (ValueError, TypeError) as exc:
            log.warning("dropping unreadable deferred DEL path=%s err=%s", path, exc)
            path.unlink(missing_ok=True)
    return out
