"""One Open vSwitch (ovsdb-server + userspace ovs-vswitchd) per node netns.

The binaries honour OVS_RUNDIR / OVS_DBDIR / OVS_LOGDIR / OVS_SYSCONFDIR, so each node gets
its own directories under ``nodes/<node>/ovs/`` and tools only need the same OVS_RUNDIR to
find its sockets (unix sockets are reachable from any netns). vswitchd runs inside the node
netns because two userspace datapaths in one netns collide on the ``ovs-netdev`` tap.
Processes daemonize and are tracked through their pidfiles; stop checks
``/proc/<pid>/cmdline`` before signalling.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from antrea_lab import processes
from antrea_lab.labdir import LabDir, LabError

log = logging.getLogger("antrea.lab.ovs")

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
DB_SERVER = "ovsdb-server"
VSWITCHD = "ovs-vswitchd"


class OVSError(RuntimeError):
    pass


@dataclass
class OVSPids:
    ovsdb_server: int
    ovs_vswitchd: int


class NodeOVS:
    """The Open vSwitch of one node: ``base`` is ``nodes/<node>/ovs``."""

    def __init__(self, netns: str, base: Path, log_dir: Path | None = None,
                 log_prefix: str = "") -> None:
        self.netns = netns
        self.base = Path(base)
        self.run_dir = self.base / "run"
        self.db_dir = self.base / "db"
        self.log_dir = Path(log_dir) if log_dir else self.base / "log"
        self.log_prefix = log_prefix
        self.db_file = self.db_dir / "conf.db"
        self.db_sock = self.run_dir / "db.sock"

    # -- environment ----------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            OVS_RUNDIR=str(self.run_dir),
            OVS_DBDIR=str(self.db_dir),
            OVS_LOGDIR=str(self.log_dir),
            OVS_SYSCONFDIR=str(self.base / "etc"),
        )
        return env

    def pidfile(self, binary: str) -> Path:
        return self.run_dir / f"{binary}.pid"

    def logfile(self, binary: str) -> Path:
        prefix = f"{self.log_prefix}-" if self.log_prefix else ""
        return self.log_dir / f"{prefix}{binary}.log"

    # -- lifecycle ------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> OVSPids:
        """Start both daemons (reusing running ones) and wait until the db answers."""
        for d in (self.run_dir, self.db_dir, self.log_dir, self.base / "etc"):
            d.mkdir(parents=True, exist_ok=True)
        if not self.db_file.exists():
            self._run(["ovsdb-tool", "create", str(self.db_file), str(SCHEMA)])
        db_pid = self.running_pid(DB_SERVER)
        if db_pid is None:
            self._in_netns([
                DB_SERVER, str(self.db_file),
                f"--remote=punix:{self.db_sock}",
                "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                f"--pidfile={self.pidfile(DB_SERVER)}",
                f"--unixctl={self.run_dir / (DB_SERVER + '.ctl')}",
                f"--log-file={self.logfile(DB_SERVER)}",
                "--detach",
            ])
            self._wait_db(timeout)
            self.vsctl("--no-wait", "init")
            db_pid = self._require_pid(DB_SERVER)
        vs_pid = self.running_pid(VSWITCHD)
        if vs_pid is None:
            self._in_netns([
                VSWITCHD, f"unix:{self.db_sock}",
                f"--pidfile={self.pidfile(VSWITCHD)}",
                f"--unixctl={self.run_dir / (VSWITCHD + '.ctl')}",
                f"--log-file={self.logfile(VSWITCHD)}",
                "--detach",
            ])
            vs_pid = self._require_pid(VSWITCHD)
        # A vsctl that waits for vswitchd proves both daemons are serving.
        self._wait(lambda: self.vsctl("--timeout=2", "show", check=False).returncode == 0,
                   timeout, "ovs-vsctl show")
        log.info("OVS running netns=%s ovsdb=%d vswitchd=%d", self.netns, db_pid, vs_pid)
        return OVSPids(db_pid, vs_pid)

    def stop(self, timeout: float = 10.0) -> list[int]:
        """SIGTERM (then SIGKILL) both daemons by pidfile; returns the PIDs signalled."""
        stopped = []
        for binary in (VSWITCHD, DB_SERVER):
            pid = self.running_pid(binary)
            if pid is None:
                continue
            processes.stop(pid, binary, timeout)
            stopped.append(pid)
            self.pidfile(binary).unlink(missing_ok=True)
        log.info("OVS stopped netns=%s pids=%s", self.netns, stopped)
        return stopped

    def restart_vswitchd(self, kill: bool = False, timeout: float = 20.0) -> int:
        """Stop ovs-vswitchd (SIGKILL if `kill`: a crash) and start it again with the same
        database; returns the new PID. ovsdb-server keeps running, so bridges and ports
        come back, but every OpenFlow flow is gone until a controller replays it."""
        pid = self.running_pid(VSWITCHD)
        if pid is not None:
            if kill:
                os.kill(pid, signal.SIGKILL)
            processes.stop(pid, VSWITCHD, timeout)
            self.pidfile(VSWITCHD).unlink(missing_ok=True)
        return self.start(timeout).ovs_vswitchd

    def running_pid(self, binary: str) -> int | None:
        try:
            pid = int(self.pidfile(binary).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if processes.is_ours(pid, binary) else None

    def pids(self) -> OVSPids | None:
        db, vs = self.running_pid(DB_SERVER), self.running_pid(VSWITCHD)
        return OVSPids(db, vs) if db and vs else None

    # -- tools ----------------------------------------------------------------------
    def vsctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(["ovs-vsctl", f"--db=unix:{self.db_sock}", *args], check=check)

    def ofctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(["ovs-ofctl", *args], check=check)

    def appctl(self, *args: str, target: str = VSWITCHD,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        ctl = self.run_dir / f"{target}.ctl"
        return self._run(["ovs-appctl", "-t", str(ctl), *args], check=check)

    # -- internals ------------------------------------------------------------------
    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise OVSError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def _in_netns(self, argv: list[str]) -> None:
        self._run(["ip", "netns", "exec", self.netns, *argv])

    def _require_pid(self, binary: str) -> int:
        pid = self.running_pid(binary)
        if pid is None:
            raise OVSError(f"{binary} did not start; see {self.logfile(binary)}")
        return pid

    def _wait_db(self, timeout: float) -> None:
        self._wait(lambda: self.db_sock.exists(), timeout, f"{self.db_sock}")

    @staticmethod
    def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise OVSError(f"timed out waiting for {what}")
            time.sleep(0.05)


def start(netns: str, base: Path, log_dir: Path | None = None, prefix: str = "") -> dict[str, int]:
    """Start a node's OVS; returns {"ovsdb-server": pid, "ovs-vswitchd": pid}.

    Logs go to ``log_dir/<prefix>-<binary>.log`` (``base/log`` by default).
    """
    pids = NodeOVS(netns, base, log_dir, prefix).start()
    return {DB_SERVER: pids.ovsdb_server, VSWITCHD: pids.ovs_vswitchd}


def restart_lab_vswitchd(lab: LabDir, node: str, kill: bool = False) -> int:
    """Restart a lab node's ovs-vswitchd inside its netns (`antrea-lab restart
    <node>-ovs-vswitchd`) and record the new PID in lab.json; returns it."""
    state = lab.load()
    if state is None or node not in state.nodes:
        raise LabError(f"no node {node!r} in lab {lab.name}")
    try:
        pid = NodeOVS(lab.netns(node), lab.ovs_dirs(node), lab.logs,
                      log_prefix=node).restart_vswitchd(kill=kill)
    except OVSError as exc:
        raise LabError(f"{node}: cannot restart {VSWITCHD}: {exc}") from None
    state = lab.load() or state  # re-read: other components may have changed meanwhile
    state.pids[f"{node}-{VSWITCHD}"] = pid
    lab.save(state)
    return pid


def stop(base: Path) -> list[int]:
    """Stop the OVS whose directories are under ``base`` (the netns is not needed)."""
    return NodeOVS("", base).stop()


def vsctl(base: Path, *args: str) -> str:
    return NodeOVS("", base).vsctl(*args).stdout


def ofctl(base: Path, *args: str) -> str:
    return NodeOVS("", base).ofctl(*args).stdout


def appctl(base: Path, *args: str, target: str = VSWITCHD) -> str:
    return NodeOVS("", base).appctl(*args, target=target).stdout
