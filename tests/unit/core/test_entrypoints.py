"""The console scripts: real checks at start-up, honest about what is not implemented."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
BIN = Path(sys.executable).parent


def run(script: str, *args: str, stdin: str = "", env: dict | None = None):
    return subprocess.run([str(BIN / script), *args], input=stdin, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=60)


def test_agent_rejects_a_bad_key_naming_it(tmp_path):
    conf = tmp_path / "antrea-agent.conf"
    conf.write_text("tunelType: vxlan\n")
    proc = run("antrea-agent", "--config", str(conf))
    assert proc.returncode == 2
    assert 'unknown key "tunelType" (did you mean "tunnelType"?)' in proc.stderr


def test_agent_prints_the_pipeline_built_from_enabled_features(tmp_path):
    conf = tmp_path / "antrea-agent.conf"
    conf.write_text("featureGates:\n  AntreaProxy: true\n")
    proc = run("antrea-agent", "--config", str(conf), "--print-pipeline")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[-1] for line in proc.stdout.splitlines()]
    assert names[0] == "PipelineRootClassifier"
    # Output ends the packet's walk; only the resubmit-only SCTPAssociations follows it.
    assert names[-2:] == ["Output", "SCTPAssociations"]
    assert "ServiceLB" in names  # AntreaProxy's tables are in


def test_agent_needs_a_node_name():
    proc = run("antrea-agent", env={"NODE_NAME": ""})
    assert proc.returncode == 2
    assert "node name is required" in proc.stderr


def test_controller_rejects_bad_config_naming_the_key_and_needs_credentials(tmp_path):
    conf = tmp_path / "antrea-controller.conf"
    conf.write_text("apiPort: many\n")
    bad = run("antrea-controller", "--config", str(conf))
    assert bad.returncode == 2 and "apiPort" in bad.stderr
    proc = run("antrea-controller", "--kubeconfig", str(tmp_path / "missing"))
    assert proc.returncode != 0 and "credentials" in proc.stderr


def test_cni_version_and_spec_shaped_errors():
    version = json.loads(run("antrea-cni", env={"CNI_COMMAND": "VERSION"}).stdout)
    assert "1.0.0" in version["supportedVersions"]
    proc = run("antrea-cni", stdin='{"cniVersion": "0.4.0"}', env={"CNI_COMMAND": "ADD"})
    err = json.loads(proc.stdout)
    assert proc.returncode == 1 and err["cniVersion"] == "0.4.0"
    assert err["code"] == 4 and "CNI_CONTAINERID" in err["msg"]
    bad = json.loads(run("antrea-cni", stdin="{", env={"CNI_COMMAND": "ADD"}).stdout)
    assert bad["code"] == 6
    unknown = json.loads(run("antrea-cni", stdin="{}", env={"CNI_COMMAND": "FOO"}).stdout)
    assert unknown["code"] == 4
