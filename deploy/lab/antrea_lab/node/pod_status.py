"""Pod phase and status as the kubelet reports them, from local container states."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from antrea_lab.node.containers import Container


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def will_restart(policy: str, exit_code: int | None) -> bool:
    if exit_code is None:
        return False
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def phase(policy: str, containers: list[Container]) -> str:
    """Kubernetes' pod phase rules for containers that have been started at least once."""
    if not containers or not all(c.ever_started for c in containers):
        return "Pending"
    running = [c for c in containers if c.state.pid]
    if running:
        return "Running"
    codes = [c.state.exit_code for c in containers]
    if any(will_restart(policy, code) for code in codes):
        return "Running"
    if all(code == 0 for code in codes):
        return "Succeeded"
    return "Failed"


def conditions(
    *, sandbox_ready: bool, containers_ready: bool, transitions: dict[str, str],
    not_ready_reason: str = "ContainersNotReady", not_ready_message: str = "",
) -> list[dict[str, Any]]:
    """Condition list; ``transitions`` remembers lastTransitionTime per type."""
    ts = now()
    rows: list[tuple[str, bool, str, str]] = [
        ("PodReadyToStartContainers", sandbox_ready, "", ""),
        ("Initialized", True, "", ""),
        ("Ready", containers_ready, not_ready_reason, not_ready_message),
        ("ContainersReady", containers_ready, not_ready_reason, not_ready_message),
        ("PodScheduled", True, "", ""),
    ]
    out = []
    for ctype, ok, reason, message in rows:
        status = "True" if ok else "False"
        if transitions.get(ctype, "").split("@")[0] != status:
            transitions[ctype] = f"{status}@{ts}"
        cond: dict[str, Any] = {
            "type": ctype, "status": status, "lastProbeTime": None,
            "lastTransitionTime": transitions[ctype].split("@", 1)[1],
        }
        if not ok and reason:
            cond["reason"] = reason
            if message:
                cond["message"] = message
        out.append(cond)
    return out


def pod_status(
    *, pod: dict[str, Any], containers: list[Container], pod_ips: list[str], host_ip: str,
    start_time: str, sandbox_ready: bool, transitions: dict[str, str],
    waiting_reason: str = "ContainerCreating", message: str = "",
) -> dict[str, Any]:
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    ph = phase(policy, containers) if sandbox_ready else "Pending"
    statuses = [c.status(waiting_reason) for c in containers]
    all_ready = bool(statuses) and all(s["ready"] for s in statuses)
    unready = [s["name"] for s in statuses if not s["ready"]]
    if ph in ("Succeeded", "Failed"):
        reason, msg = "PodCompleted", ""
    else:
        reason = "ContainersNotReady"
        msg = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
    status: dict[str, Any] = {
        "phase": ph,
        "conditions": conditions(
            sandbox_ready=sandbox_ready, containers_ready=all_ready and ph == "Running",
            transitions=transitions, not_ready_reason=reason, not_ready_message=msg,
        ),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    }
    if message:
        status["message"] = message
    if pod_ips:
        status["podIP"] = pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in pod_ips]
    return status
