"""Start the lab's daemons detached, and stop them by PID only (never by name).

A PID alone can be reused after a crash, so before signalling we check that
/proc/<pid>/cmdline still carries the marker we started it with.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger("antrea.lab.processes")


def spawn(argv: Sequence[str], log_file: Path, pid_file: Path,
          env: Mapping[str, str] | None = None, netns: str | None = None) -> int:
    """Start `argv` in its own session (it outlives the CLI), output appended to log_file."""
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    full_env.update(env or {})
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=full_env, close_fds=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    # Until the child has exec'd, its /proc cmdline is ours: callers check the marker.
    own = cmdline(os.getpid())
    deadline = time.monotonic() + 5
    while cmdline(proc.pid) == own and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    log.debug("spawned pid=%d argv=%s", proc.pid, " ".join(argv))
    return proc.pid


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_ours(pid: int, marker: str) -> bool:
    """Alive and still the process we started (its command line contains `marker`)."""
    if pid <= 1:
        return False
    # While a process execs (`ip netns exec` execs twice), /proc/<pid>/cmdline reads
    # empty for a moment: measured ~10 % of reads in a tight exec loop. Reading it as
    # "gone" made `restart controller` report a live controller as exited.
    deadline = time.monotonic() + 0.5
    while True:
        text = cmdline(pid)
        state = proc_state(pid)
        if state in ("", "Z", "X"):
            return False
        if text:
            return marker in text
        if time.monotonic() > deadline:
            return False  # a kernel thread: never ours
        time.sleep(0.002)


def proc_state(pid: int) -> str:
    """The one-letter state from /proc/<pid>/stat, "" when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return ""


def stop(pid: int, marker: str, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`. False if it was not running (or not ours)."""
    if not is_ours(pid, marker):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    if _wait_gone(pid, marker, timeout):
        return True
    log.warning("pid %d did not stop after SIGTERM; killing", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, marker, 5.0)
    return True


def _wait_gone(pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_ours(pid, marker):
            return True
        time.sleep(0.05)
    return False


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def in_netns(netns: str) -> list[int]:
    """PIDs of the processes whose network namespace is /run/netns/<netns>."""
    try:
        target = os.stat(f"/run/netns/{netns}")
    except FileNotFoundError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(entry / "ns" / "net")
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        if (st.st_ino, st.st_dev) == (target.st_ino, target.st_dev):
            found.append(int(entry.name))
    return found
