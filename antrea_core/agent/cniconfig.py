"""Install this node's CNI configuration, as Antrea's install-cni init container does.

* ``<conf dir>/10-antrea.conflist``: antrea, then portmap for hostPort (capability
  ``portMappings``). antrea's entry carries ``cniSocket`` so antrea-cni reaches this
  agent whatever its socket path.
* ``<bin dir>/antrea``: the antrea-cni executable (kubelet runs the plugin named by
  ``type``), and ``portmap`` when the bin dir lacks one and the OS ships it (Debian:
  /usr/lib/cni), so the bin dir alone satisfies the conflist.

Files are replaced atomically (temp + rename), and left alone when already right: kubelet
reloads the conflist when the directory changes, and a half-written conflist would make
it report the network not ready.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("antrea.agent.cniconfig")

CONFLIST_NAME = "10-antrea.conflist"
NETWORK_NAME = "antrea"
CNI_VERSION = "1.0.0"
PLUGIN_TYPE = "antrea"  # the name kubelet looks up in its bin dirs
CNI_EXECUTABLE = "antrea-cni"
SYSTEM_CNI_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))


class CNIConfigError(RuntimeError):
    """The CNI configuration or binary could not be installed; names the path."""


def conflist(cni_socket: str) -> dict[str, Any]:
    """The network configuration list kubelet will run for every pod."""
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [
            {"type": PLUGIN_TYPE, "cniSocket": str(cni_socket)},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _replace(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write ``data`` to ``path`` atomically unless it already holds it; True if written."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return True


def install_conflist(conf_dir: str | os.PathLike[str], cni_socket: str) -> Path:
    """Write ``10-antrea.conflist`` into ``conf_dir`` (created if missing)."""
    directory = Path(conf_dir)
    path = directory / CONFLIST_NAME
    data = (json.dumps(conflist(cni_socket), indent=2) + "\n").encode()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = _replace(path, data)
    except OSError as exc:
        raise CNIConfigError(f"cannot write the CNI configuration {path}: {exc}") from None
    log.info("CNI configuration %s path=%s socket=%s",
             "installed" if written else "unchanged", path, cni_socket)
    return path


def find_cni_executable() -> Path:
    """antrea-cni next to this interpreter (the venv's scripts), else on PATH."""
    beside = Path(sys.executable).parent / CNI_EXECUTABLE
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(CNI_EXECUTABLE)
    if found is None:
        raise CNIConfigError(f"{CNI_EXECUTABLE} not found next to {sys.executable} nor on "
                             "PATH; is antrea-core installed?")
    return Path(found)


def _link(target: Path, path: Path) -> bool:
    """Point symlink ``path`` at ``target`` atomically; True if it changed."""
    if path.is_symlink() and Path(os.readlink(path)) == target:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, path)  # also replaces a regular file left by an older install
    return True


def install_cni_binaries(bin_dir: str | os.PathLike[str], executable: Path | None = None,
                         system_dirs: tuple[Path, ...] = SYSTEM_CNI_DIRS) -> Path:
    """Link antrea-cni as ``<bin_dir>/antrea`` (and portmap if missing); returns the link.

    A symlink, not a copy: the console script's interpreter line names this environment,
    so a copy would work no better and would go stale on upgrade.
    """
    directory = Path(bin_dir)
    source = (executable or find_cni_executable()).resolve()
    path = directory / PLUGIN_TYPE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        changed = _link(source, path)
        portmap = directory / "portmap"
        if not portmap.exists():
            shipped = next((d / "portmap" for d in system_dirs
                            if (d / "portmap").is_file() and d.resolve() != directory.resolve()),
                           None)
            if shipped is None:
                log.warning("no portmap CNI plugin found in %s; hostPort pods will fail "
                            "(Debian: apt-get install containernetworking-plugins)",
                            ", ".join(str(d) for d in system_dirs))
            else:
                _link(shipped, portmap)
    except OSError as exc:
        raise CNIConfigError(f"cannot install the CNI plugin into {directory}: {exc}"
                             ) from None
    log.info("CNI plugin %s path=%s target=%s", "installed" if changed else "unchanged",
             path, source)
    return path
