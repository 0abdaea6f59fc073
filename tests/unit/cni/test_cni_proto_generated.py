"""The checked-in gRPC code matches antrea_core/apis/cni.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]
GENERATED = ("cni_pb2.py", "cni_pb2_grpc.py")


def test_checked_in_generated_code_is_not_stale(tmp_path):
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        pytest.fail("grpcio-tools is not installed; it is needed to check the generated code")
    proc = subprocess.run(["bash", str(ROOT / "hack" / "gen-proto.sh"), str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    for name in GENERATED:
        fresh = (tmp_path / "antrea_core" / "apis" / name).read_text()
        checked_in = (ROOT / "antrea_core" / "apis" / name).read_text()
        assert fresh == checked_in, f"{name} is stale: run bash hack/gen-proto.sh"


def test_service_has_the_three_cni_commands():
    from antrea_core.apis import cni_pb2

    service = cni_pb2.DESCRIPTOR.services_by_name["Cni"]
    assert [m.name for m in service.methods] == ["CmdAdd", "CmdCheck", "CmdDel"]
    assert cni_pb2.DESCRIPTOR.package == "antrea.cni.v1"
