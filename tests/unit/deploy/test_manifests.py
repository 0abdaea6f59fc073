"""deploy/kubernetes/antrea.yml: generated from the example confs, self-consistent, and
every command it runs exists with the flags it passes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from antrea_core.config.loading import load_agent_config, load_controller_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = ROOT / "deploy" / "kubernetes" / "antrea.yml"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_manifests",
                                                  ROOT / "hack" / "gen-manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict]:
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_committed_manifest_is_what_the_generator_prints() -> None:
    assert MANIFEST.read_text() == _generator().render(), \
        "regenerate: .venv/bin/python hack/gen-manifests.py > deploy/kubernetes/antrea.yml"


def test_configmap_confs_load_with_the_daemons_loaders(objects, tmp_path: Path) -> None:
    data = objects[("ConfigMap", "antrea-config")]["data"]
    (tmp_path / "agent.conf").write_text(data["antrea-agent.conf"])
    (tmp_path / "controller.conf").write_text(data["antrea-controller.conf"])
    assert load_agent_config(tmp_path / "agent.conf").ovs_bridge == "br-int"
    assert load_controller_config(tmp_path / "controller.conf").api_port == 10349


def _pod_specs(objects) -> list[tuple[str, dict]]:
    return [(name, obj["spec"]["template"]["spec"]) for (kind, name), obj in objects.items()
            if kind in ("Deployment", "DaemonSet")]


def test_every_mount_names_a_volume_and_every_serviceaccount_exists(objects) -> None:
    for name, spec in _pod_specs(objects):
        volumes = {v["name"] for v in spec["volumes"]}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (name, container["name"], mount["name"])
        assert ("ServiceAccount", spec["serviceAccountName"]) in objects
        assert ("ClusterRoleBinding", spec["serviceAccountName"]) in objects


def test_controller_service_selects_the_controller_pods(objects) -> None:
    service = objects[("Service", "antrea")]
    template = objects[("Deployment", "antrea-controller")]["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    assert service["spec"]["ports"][0]["targetPort"] in port_names


@pytest.mark.parametrize("daemon", ["antrea-agent", "antrea-controller"])
def test_container_commands_exist_and_accept_their_flags(objects, daemon: str) -> None:
    commands = [c["command"] for _, spec in _pod_specs(objects) for c in spec["containers"]
                if c["command"][0] == daemon]
    assert commands, f"no container runs {daemon}"
    exe = Path(sys.executable).parent / daemon
    usage = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60,
                           env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert usage.returncode == 0, usage.stderr
    for flag in (a for a in commands[0] if a.startswith("--")):
        assert flag in usage.stdout, f"{daemon} has no {flag} option"
