"""The real-cluster manifest is accepted by the lab's API server as kubectl applies it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "antrea.yml"


def test_kubectl_applies_the_antrea_manifest_and_a_second_apply_changes_nothing(lab) -> None:
    first = lab.kubectl("apply", "-f", str(MANIFEST))
    assert "daemonset.apps/antrea-agent created" in first.stdout
    second = lab.kubectl("apply", "-f", str(MANIFEST))
    assert "created" not in second.stdout and "configured" not in second.stdout, second.stdout
    ds = json.loads(lab.kubectl("get", "-n", "kube-system", "daemonset", "antrea-agent",
                                "-o", "json").stdout)
    names = [c["name"] for c in ds["spec"]["template"]["spec"]["containers"]]
    assert names == ["antrea-agent", "antrea-ovs"]
    lab.kubectl("delete", "-f", str(MANIFEST))
    gone = lab.kubectl("get", "-n", "kube-system", "configmap", "antrea-config", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
