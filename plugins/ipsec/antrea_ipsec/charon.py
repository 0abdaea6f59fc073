"""One strongSwan charon per node network namespace, with userspace ESP (kernel-libipsec).

The host kernel has no ESP, so charon encrypts in userspace: kernel-libipsec creates a TUN
device `ipsec0` and routes the traffic of each CHILD SA into it (routing table 220); the
encrypted packets leave as ESP-in-UDP on port 4500 through charon's own socket.

Several charons share this machine, one per node netns. charon's pidfile is fixed at
/var/run/charon.pid, so each runs with a private /run: `ip netns exec` already gives the
command its own mount namespace (slave of the host's), and a bind mount of the node's
`run/` directory over /run stays inside it. STRONGSWAN_CONF points at the node's config
and the VICI socket lives in the node's state directory.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("antrea.agent.ipsec.charon")

CHARON = Path("/usr/lib/ipsec/charon")

PLUGIN_DIR = Path("/usr/lib/ipsec/plugins")
# kernel-libipsec must come before kernel-netlink: the first kernel-ipsec backend loaded
# wins, and kernel-netlink would otherwise take the (absent) kernel ESP path.
PLUGINS = ("random nonce aes sha1 sha2 hmac gmp kdf pem pkcs1 pubkey x509 "
           "kernel-libipsec kernel-netlink socket-default vici updown")
# Optional (libstrongswan-standard-plugins): openssl brings AES-NI and AES-GCM to the
# userspace ESP, which is the throughput bottleneck.
OPTIONAL_PLUGINS = ("openssl",)


def plugin_list() -> str:
    """The plugins to load: the optional ones first when installed (first one wins)."""
    extra = [p for p in OPTIONAL_PLUGINS if (PLUGIN_DIR / f"libstrongswan-{p}.so").exists()]
    return " ".join([*extra, PLUGINS])

# socket-default marks charon's own IKE/ESP-in-UDP packets; the policy routing rule of
# table 220 skips marked packets, so encrypted packets are not routed back into ipsec0.
DEFAULT_FWMARK = 0x4000


class CharonError(RuntimeError):
    """charon could not be started/stopped; the message names what failed."""


@dataclass(frozen=True)
class CharonConfig:
    """Where a node's charon lives: its netns, its state directory, its socket mark."""

    netns: str  # "": the caller's own netns (the agent runs in the node's)
    state_dir: Path
    fwmark: int = DEFAULT_FWMARK

    @property
    def conf_path(self) -> Path:
        return self.state_dir / "strongswan.conf"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def vici_socket(self) -> Path:
        return self.state_dir / "charon.vici"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "charon.log"

    @property
    def pid_path(self) -> Path:
        """charon's own pidfile, seen from inside its private /run."""
        return self.run_dir / "charon.pid"


def render_conf(cfg: CharonConfig) -> str:
    """The strongswan.conf for one node's charon."""
    mark = f"0x{cfg.fwmark:x}"
    return f"""\
# Written by antrea_ipsec.charon for netns {cfg.netns}; do not edit.
charon {{
    load = {plugin_list()}
    install_virtual_ip = no
    # Retransmit quickly: the peer's charon may come up after ours.
    retransmit_tries = 3
    retransmit_timeout = 2.0
    retransmit_base = 1.4
    filelog {{
        node {{
            path = {cfg.log_path}
            time_format = %b %e %T
            default = 1
            ike_name = yes
            flush_line = yes
        }}
    }}
    syslog {{
        daemon {{
            default = -1
        }}
    }}
    plugins {{
        vici {{
            socket = unix://{cfg.vici_socket}
        }}
        socket-default {{
            fwmark = {mark}
        }}
        kernel-netlink {{
            fwmark = !{mark}
        }}
        kernel-libipsec {{
            # Our selectors are the peer's tunnel IP, which may be its IKE address:
            # the fwmark pair above keeps IKE/ESP out of ipsec0.
            allow_peer_ts = yes
        }}
    }}
}}
"""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def vici_answers(path: Path) -> bool:
    """True if something accepts connections on the VICI socket."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1.0)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Charon:
    """The charon of one node netns: start, wait for VICI, stop by PID."""

    def __init__(self, cfg: CharonConfig) -> None:
        self.cfg = cfg
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted: int | None = None  # a charon an earlier agent run started

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else self._adopted

    def running(self) -> bool:
        if self._adopted is not None:
            return _pid_alive(self._adopted)
        return self._proc is not None and self._proc.poll() is None

    def adopt(self) -> int | None:
        """Take over a charon that runs with this config and answers on VICI (started
        by an earlier run of the caller); its SAs stay up. None if there is none."""
        try:
            pid = int(self.cfg.pid_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return None
        if not (pid and _pid_alive(pid) and self._owned_by_us(pid)
                and vici_answers(self.cfg.vici_socket)):
            return None
        self._proc, self._adopted = None, pid
        log.info("charon adopted netns=%s pid=%d", self.cfg.netns, pid)
        return pid

    def start(self, timeout: float = 20.0, replace_stale: bool = False) -> int:
        """Start charon in the netns and return its PID once VICI answers. A charon
        reading the same config that still runs (its starter crashed) is refused, or
        stopped first with `replace_stale`."""
        if self.running():
            return self.pid  # type: ignore[return-value]
        self._adopted = None
        cfg = self.cfg
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        cfg.conf_path.write_text(render_conf(cfg))
        if replace_stale:
            self._stop_stale(timeout)
        self._clear_stale()
        with cfg.log_path.open("a") as f:
            f.write(f"--- start {time.strftime('%b %e %T')} ---\n")
        env = {**os.environ, "STRONGSWAN_CONF": str(cfg.conf_path)}
        # `ip netns exec` (or, already in the node's netns, `unshare --mount`) execs (no
        # fork) into a mount namespace of its own; sh bind-mounts the private /run and
        # execs charon, so the PID we hold is charon's.
        prefix = (["ip", "netns", "exec", cfg.netns] if cfg.netns
                  else ["unshare", "--mount", "--propagation", "slave"])
        argv = [*prefix, "sh", "-c", 'mount --bind "$1" /run && exec "$2"', "sh",
                str(cfg.run_dir), str(CHARON)]
        log_f = cfg.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                          stdout=log_f, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        except OSError as e:
            raise CharonError(f"charon in netns {cfg.netns}: cannot run {argv[0]}: {e}") from e
        finally:
            log_f.close()
        deadline = time.monotonic() + timeout
        while not vici_answers(cfg.vici_socket):
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise CharonError(f"charon in netns {cfg.netns} exited with {code} before "
                                  f"VICI answered; log tail:\n{_tail(cfg.log_path)}")
            if time.monotonic() > deadline:
                self.stop()
                raise CharonError(f"charon in netns {cfg.netns}: VICI socket {cfg.vici_socket}"
                                  f" silent after {timeout}s; log tail:\n{_tail(cfg.log_path)}")
            time.sleep(0.1)
        log.info("charon started netns=%s pid=%d vici=%s", cfg.netns, self._proc.pid,
                 cfg.vici_socket)
        return self._proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; leaves no stale pidfile/socket."""
        if self._adopted is not None:
            self._adopted = None
            self._stop_stale(timeout)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("charon netns=%s pid=%d ignored SIGTERM; killing",
                            self.cfg.netns, proc.pid)
                proc.kill()
                proc.wait(timeout)
            log.info("charon stopped netns=%s pid=%d rc=%s", self.cfg.netns, proc.pid,
                     proc.returncode)
        self._clear_stale()

    def kill(self) -> None:
        """SIGKILL without cleanup, as a crash would (for tests of restart-safety)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def _clear_stale(self) -> None:
        """Remove the pidfile and socket of a charon that is no longer running: charon
        refuses to start while its pidfile names a live process (possibly a reused PID)."""
        pid_path = self.cfg.pid_path
        try:
            old = int(pid_path.read_text().strip() or 0)
        except (OSError, ValueError):
            old = 0
        if old and _pid_alive(old) and self._owned_by_us(old):
            raise CharonError(f"charon in netns {self.cfg.netns} already runs as pid {old} "
                              f"(pidfile {pid_path})")
        for stale in (pid_path, self.cfg.vici_socket):
            stale.unlink(missing_ok=True)

    def _stop_stale(self, timeout: float) -> None:
        try:
            old = int(self.cfg.pid_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return
        if not (old and _pid_alive(old) and self._owned_by_us(old)):
            return
        log.warning("stopping a charon left running netns=%s pid=%d", self.cfg.netns, old)
        os.kill(old, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(old):
            if time.monotonic() > deadline:
                os.kill(old, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(0.05)

    def _owned_by_us(self, pid: int) -> bool:
        """Is `pid` a charon reading our config (not an unrelated process with a reused PID)?"""
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False
        return f"STRONGSWAN_CONF={self.cfg.conf_path}".encode() in env
