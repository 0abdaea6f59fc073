"""The real-cluster manifest is accepted by the lab's API server as kubectl applies it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.lab

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "antrea.yml"
CRD = "CustomResourceDefinition"


def test_kubectl_applies_the_antrea_manifest_and_a_second_apply_changes_nothing(
        lab, tmp_path: Path) -> None:
    first = lab.kubectl("apply", "-f", str(MANIFEST))
    assert "daemonset.apps/antrea-agent created" in first.stdout
    # The lab installed the CRDs at start-up from the same files.
    for name in ("egresses.crd.antrea.io", "externalippools.crd.antrea.io"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{name}" in first.stdout
    second = lab.kubectl("apply", "-f", str(MANIFEST))
    assert "created" not in second.stdout and "configured" not in second.stdout, second.stdout
    ds = json.loads(lab.kubectl("get", "-n", "kube-system", "daemonset", "antrea-agent",
                                "-o", "json").stdout)
    names = [c["name"] for c in ds["spec"]["template"]["spec"]["containers"]]
    assert names == ["antrea-agent", "antrea-ovs"]
    # Everything but the CRDs: the session lab's other tests use them.
    rest = tmp_path / "without-crds.yml"
    rest.write_text(yaml.safe_dump_all([d for d in yaml.safe_load_all(MANIFEST.read_text())
                                        if d["kind"] != CRD]))
    lab.kubectl("delete", "-f", str(rest))
    gone = lab.kubectl("get", "-n", "kube-system", "configmap", "antrea-config", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    lab.kubectl("get", "crd", "egresses.crd.antrea.io")


POOL = """
apiVersion: crd.antrea.io/v1beta1
kind: ExternalIPPool
metadata: {name: manifest-test-pool}
spec:
  ipRanges: [{cidr: 10.250.0.0/28}, {start: 10.250.1.1, end: 10.250.1.4}]
  nodeSelector: {}
---
apiVersion: crd.antrea.io/v1beta1
kind: Egress
metadata: {name: manifest-test-egress}
spec:
  appliedTo: {podSelector: {matchLabels: {app: none}}}
  egressIP: 10.250.0.5
  externalIPPool: manifest-test-pool
"""


def test_kubectl_gets_egresses_and_pools_by_short_name_with_their_columns(lab) -> None:
    lab.kubectl("apply", "-f", "-", stdin=POOL)
    try:
        eg = lab.kubectl("get", "eg").stdout.splitlines()
        assert eg[0].split() == ["NAME", "EGRESSIP", "AGE", "NODE"], eg
        assert eg[1].split()[0] == "manifest-test-egress"
        eip = lab.kubectl("get", "eip").stdout.splitlines()
        assert eip[0].split() == ["NAME", "TOTAL", "USED", "AGE"], eip
        assert eip[1].split()[0] == "manifest-test-pool"
        bad = lab.kubectl("apply", "-f", "-", check=False, stdin=POOL.replace(
            "egressIP: 10.250.0.5", "egressIP: 10.250.0.300"))
        assert bad.returncode != 0 and "spec.egressIP" in bad.stderr, bad.stderr
    finally:
        lab.kubectl("delete", "-f", "-", stdin=POOL, check=False)
