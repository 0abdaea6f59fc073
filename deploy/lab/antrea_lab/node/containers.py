"""Container processes: a pod's containers run as plain processes inside the pod netns.

Each container is ``ip netns exec <pod-netns> <command>`` in a session of its own, so it
survives a kubelet restart and can be signalled as a process group. Its state (pid, process
start time, restart count, last termination) lives in ``<pod dir>/<container>.state.json``
so a restarted kubelet re-adopts it. The "image" is ignored: a container without a command
runs the lab workload (``python -m antrea_lab.workload``), with ``serve`` and its
containerPorts as default arguments, the way an image's ENTRYPOINT and CMD combine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("antrea.lab.containers")

WORKLOAD_ENTRYPOINT = [sys.executable, "-m", "antrea_lab.workload"]
BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 600.0  # a container that ran this long starts over at BACKOFF_START
UNKNOWN_EXIT = 255  # an adopted process's exit status cannot be observed


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_args(container: dict[str, Any]) -> list[str]:
    """``serve --tcp .. --udp .. --sctp ..`` from the container's ports."""
    by_proto: dict[str, list[str]] = {}
    for port in container.get("ports") or []:
        proto = str(port.get("protocol") or "TCP").lower()
        by_proto.setdefault(proto, []).append(str(port["containerPort"]))
    args = ["serve"]
    for proto in ("tcp", "udp", "sctp"):
        if by_proto.get(proto):
            args += [f"--{proto}", ",".join(by_proto[proto])]
    return args


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known variables expand, $$ escapes, others stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, text)


def container_env(container: dict[str, Any], pod: dict[str, Any], pod_ip: str,
                  node_name: str, host_ip: str) -> dict[str, str]:
    meta = pod.get("metadata") or {}
    fields = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": node_name,
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOSTNAME": meta.get("name", ""),
        "POD_NAME": meta.get("name", ""),
        "POD_NAMESPACE": meta.get("namespace", ""),
        "POD_IP": pod_ip,
        "NODE_NAME": node_name,
    }
    for var in container.get("env") or []:
        if "value" in var and var["value"] is not None:
            env[var["name"]] = expand(str(var["value"]), env)
        else:
            ref = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if ref in fields:
                env[var["name"]] = fields[ref]
            elif ref and ref.startswith("metadata.labels['"):
                key = ref[len("metadata.labels['"):-2]
                env[var["name"]] = (meta.get("labels") or {}).get(key, "")
    return env


def container_argv(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    command = container.get("command")
    args = container.get("args")
    if not command:
        command = WORKLOAD_ENTRYPOINT
        if not args:
            args = default_args(container)
    return [expand(str(a), env) for a in [*command, *(args or [])]]


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: tells a re-used PID from the original process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


@dataclass
class ContainerState:
    name: str
    container_id: str = ""
    pid: int = 0
    pid_start: int = 0
    started_at: str = ""
    started_wall: float = 0.0  # wall-clock seconds, survives kubelet restarts
    restart_count: int = 0
    exit_code: int | None = None
    finished_at: str = ""
    reason: str = ""
    last_terminated: dict[str, Any] | None = None
    next_start: float = 0.0  # wall-clock time before which a restart waits (backoff)
    backoff: float = 0.0
    ready: bool = False
    probe_successes: int = 0
    probe_failures: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Container:
    """One container process of a pod: start, poll, stop; state persisted on disk."""

    def __init__(self, spec: dict[str, Any], pod_dir: Path) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.pod_dir = pod_dir
        self.state_file = pod_dir / f"{self.name}.state.json"
        self.log_file = pod_dir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # Readiness from probes (memory only: a restarted kubelet probes again).
        self.probe_ready = False
        self.state = self._load()

    def _load(self) -> ContainerState:
        try:
            return ContainerState(**json.loads(self.state_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return ContainerState(name=self.name)

    def save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state)))
        tmp.replace(self.state_file)

    # -- status ---------------------------------------------------------------------
    @property
    def ever_started(self) -> bool:
        return bool(self.state.container_id)

    def running(self) -> bool:
        """Poll the process; records its termination when it has exited."""
        st = self.state
        if not st.pid:
            return False
        if self.alive():
            return True
        if self.proc is not None:
            code = self.proc.returncode if self.proc.returncode is not None else UNKNOWN_EXIT
            self._terminated(code if code >= 0 else 128 - code)
        else:
            self._terminated(UNKNOWN_EXIT)  # adopted process gone: its status is lost
        return False

    def alive(self) -> bool:
        """Whether the recorded process still runs; changes no state (any thread)."""
        st = self.state
        if not st.pid:
            return False
        if self.proc is not None:
            return self.proc.poll() is None
        return process_start_time(st.pid) == st.pid_start

    def _terminated(self, code: int) -> None:
        st = self.state
        st.exit_code = code
        st.finished_at = now_iso()
        st.reason = "Completed" if code == 0 else "Error"
        st.pid = 0
        st.ready = False
        self.proc = None
        log.info("container exited pod_dir=%s container=%s code=%d",
                 self.pod_dir.name, self.name, code)
        self.save()

    # -- lifecycle ------------------------------------------------------------------
    def start(self, netns: str | None, env: dict[str, str]) -> None:
        """Start (or restart) the process; ``netns`` None = the kubelet's own netns."""
        st = self.state
        if st.container_id:
            st.last_terminated = self.terminated_status()
            st.restart_count += 1
        argv = container_argv(self.spec, env)
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, cwd="/", start_new_session=True,
            )
        st.container_id = secrets.token_hex(32)
        st.pid = self.proc.pid
        st.pid_start = process_start_time(self.proc.pid) or 0
        st.started_at = now_iso()
        st.started_wall = time.time()
        st.exit_code = None
        st.finished_at = ""
        st.reason = ""
        st.ready = False
        st.probe_successes = st.probe_failures = 0
        self.probe_ready = False
        self.save()
        log.info("container started pod_dir=%s container=%s pid=%d argv=%s",
                 self.pod_dir.name, self.name, st.pid, argv)

    def schedule_restart(self) -> float:
        """Set the backoff after an exit; returns the wall-clock time of the restart."""
        st = self.state
        ran_for = time.time() - st.started_wall
        if ran_for > BACKOFF_RESET_AFTER or st.backoff == 0:
            st.backoff = BACKOFF_START
        else:
            st.backoff = min(st.backoff * 2, BACKOFF_MAX)
        st.next_start = time.time() + st.backoff
        self.save()
        return st.next_start

    def stop(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL after ``grace`` seconds."""
        if not self.running():
            return
        pid = self.state.pid
        self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.running():
            if time.monotonic() >= deadline:
                log.info("grace period over, SIGKILL container=%s pid=%d", self.name, pid)
                self._signal(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
            time.sleep(0.05)

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        # The container leads its own session: signal the group (its children too).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    # -- API view -------------------------------------------------------------------
    def terminated_status(self) -> dict[str, Any]:
        st = self.state
        return {"terminated": {
            "exitCode": st.exit_code if st.exit_code is not None else UNKNOWN_EXIT,
            "reason": st.reason or "Error",
            "startedAt": st.started_at or None,
            "finishedAt": st.finished_at or None,
            "containerID": f"antrea-lab://{st.container_id}",
        }}

    def status(self, waiting_reason: str = "ContainerCreating") -> dict[str, Any]:
        st = self.state
        running = bool(st.pid)
        if running:
            state: dict[str, Any] = {"running": {"startedAt": st.started_at}}
        elif st.exit_code is not None and st.next_start > time.time():
            state = {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {st.backoff:g}s restarting failed container={self.name}",
            }}
        elif st.exit_code is not None:
            state = self.terminated_status()
        else:
            state = {"waiting": {"reason": waiting_reason}}
        image = self.spec.get("image") or "antrea-lab/workload"
        out: dict[str, Any] = {
            "name": self.name,
            "ready": running and st.ready,
            "started": running,
            "restartCount": st.restart_count,
            "state": state,
            "lastState": st.last_terminated or {},
            "image": image,
            "imageID": f"antrea-lab://{image}",
        }
        if st.container_id:
            out["containerID"] = f"antrea-lab://{st.container_id}"
        return out
