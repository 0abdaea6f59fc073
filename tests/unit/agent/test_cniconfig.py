"""The node's CNI configuration: conflist content and the installed plugin binaries."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from antrea_core.agent import cniconfig

pytestmark = pytest.mark.unit


def test_conflist_chains_antrea_then_portmap_with_the_agent_socket(tmp_path: Path):
    path = cniconfig.install_conflist(tmp_path / "net.d", "/run/antrea/n1/cni.sock")

    assert path == tmp_path / "net.d" / "10-antrea.conflist"
    doc = json.loads(path.read_text())
    assert doc == {
        "cniVersion": "1.0.0",
        "name": "antrea",
        "plugins": [
            {"type": "antrea", "cniSocket": "/run/antrea/n1/cni.sock"},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def test_conflist_is_not_rewritten_when_unchanged_and_replaced_when_changed(tmp_path: Path):
    path = cniconfig.install_conflist(tmp_path, "/a.sock")
    before = path.stat().st_mtime_ns
    os.utime(path, ns=(before - 10**9, before - 10**9))
    cniconfig.install_conflist(tmp_path, "/a.sock")
    assert path.stat().st_mtime_ns == before - 10**9  # untouched: kubelet sees no change

    cniconfig.install_conflist(tmp_path, "/b.sock")
    assert json.loads(path.read_text())["plugins"][0]["cniSocket"] == "/b.sock"
    assert [p.name for p in tmp_path.iterdir()] == ["10-antrea.conflist"]  # no temp left


def test_the_cni_executable_is_linked_as_antrea_with_portmap_beside_it(tmp_path: Path):
    exe = tmp_path / "venv" / "antrea-cni"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    system = tmp_path / "usr-lib-cni"
    system.mkdir()
    (system / "portmap").write_text("#!/bin/sh\n")
    bin_dir = tmp_path / "bin"

    link = cniconfig.install_cni_binaries(bin_dir, exe, system_dirs=(system,))

    assert link == bin_dir / "antrea" and link.resolve() == exe.resolve()
    assert (bin_dir / "portmap").resolve() == (system / "portmap").resolve()
    # Idempotent, and replaces a stale regular file left by an older install.
    link.unlink()
    link.write_text("old copy")
    cniconfig.install_cni_binaries(bin_dir, exe, system_dirs=(system,))
    assert link.is_symlink() and link.resolve() == exe.resolve()


def test_the_installed_executable_defaults_to_this_environments_antrea_cni(tmp_path: Path):
    link = cniconfig.install_cni_binaries(tmp_path, system_dirs=())
    assert link.resolve().name == "antrea-cni" and os.access(link, os.X_OK)
