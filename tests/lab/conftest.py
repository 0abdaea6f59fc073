"""One lab for the whole test session (bringing a lab up per test would not fit CI)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from antrea_lab import cluster
from antrea_lab.labdir import LabDir

LAB_NAME = f"pytest{os.getpid() % 10000}"
NODES = 2


class Lab:
    def __init__(self, lab: LabDir, state: cluster.LabState) -> None:
        self.dir = lab
        self.state = state
        self.api = cluster.kube_client(lab)

    @property
    def kubeconfig(self) -> Path:
        return self.dir.kubeconfig

    def kubectl(self, *args: str, stdin: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        from antrea_lab.cli import kubectl_path

        proc = subprocess.run([kubectl_path(), "--kubeconfig", str(self.kubeconfig), *args],
                              input=stdin, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def antrea_lab(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(Path(sys.executable).parent / "antrea-lab"), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "ANTREA_LAB_NAME": self.dir.name,
                                   "ANTREA_LAB_DIR": str(self.dir.path)})


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces, Open vSwitch)")
    root = tmp_path_factory.mktemp("lab")
    lab_dir = LabDir(LAB_NAME, root=root)
    try:
        state = cluster.up(lab_dir, NODES, progress=lambda m: print(m, file=sys.stderr))
        yield Lab(lab_dir, state)
    finally:
        cluster.down(lab_dir, progress=lambda m: print(m, file=sys.stderr))
