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


# -- Antrea's CRDs ----------------------------------------------------------------------

def test_crds_come_first_and_are_the_files_of_antrea_core_apis_crds() -> None:
    from antrea_core.apis import crds

    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    definitions = crds.definitions()
    assert [d["metadata"]["name"] for d in definitions] == \
        ["egresses.crd.antrea.io", "externalippools.crd.antrea.io"]
    assert docs[:len(definitions)] == definitions  # applied before anything that uses them


def _structural_gaps(schema: dict, path: str) -> list[str]:
    """Paths of schema nodes without a type (combinator branches may omit it)."""
    gaps = [] if "type" in schema else [path]
    for name, sub in (schema.get("properties") or {}).items():
        gaps += _structural_gaps(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        gaps += _structural_gaps(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        gaps += _structural_gaps(schema["additionalProperties"], f"{path}{{}}")
    return gaps


@pytest.mark.parametrize("name", ["egresses.crd.antrea.io", "externalippools.crd.antrea.io"])
def test_crd_schemas_are_structural_with_status_and_printer_columns(objects, name) -> None:
    crd = objects[("CustomResourceDefinition", name)]
    assert crd["spec"]["scope"] == "Cluster"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1beta1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert _structural_gaps(schema, "") == []
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    expected = {"egresses.crd.antrea.io": (["EgressIP", "Age", "Node"], ["eg"]),
                "externalippools.crd.antrea.io": (["Total", "Used", "Age"], ["eip"])}[name]
    assert (columns, crd["spec"]["names"]["shortNames"]) == expected


def _allowed(rules: list[dict], group: str, resource: str, verb: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
               for r in rules)


@pytest.mark.parametrize(("role", "kind", "group", "resource", "verbs"), [
    ("antrea-controller", "ClusterRole", "crd.antrea.io", "egresses",
     ["get", "list", "watch", "update", "patch"]),
    ("antrea-controller", "ClusterRole", "crd.antrea.io", "egresses/status",
     ["update", "patch"]),
    ("antrea-controller", "ClusterRole", "crd.antrea.io", "externalippools",
     ["get", "list", "watch", "update", "patch"]),
    ("antrea-controller", "ClusterRole", "crd.antrea.io", "externalippools/status",
     ["update", "patch"]),
    ("antrea-agent", "ClusterRole", "crd.antrea.io", "egresses", ["get", "list", "watch"]),
    ("antrea-agent", "ClusterRole", "crd.antrea.io", "externalippools",
     ["get", "list", "watch"]),
    ("antrea-agent", "ClusterRole", "crd.antrea.io", "egresses/status", ["update", "patch"]),
    ("antrea-agent", "ClusterRole", "", "namespaces", ["get", "list", "watch"]),
    ("antrea-agent", "ClusterRole", "", "pods", ["get", "list", "watch"]),
    ("antrea-agent", "ClusterRole", "", "nodes", ["get", "list", "watch"]),
    ("antrea-agent", "Role", "coordination.k8s.io", "leases",
     ["get", "create", "update", "delete", "list", "watch"]),
])
def test_rbac_grants_what_egress_needs(objects, role, kind, group, resource, verbs) -> None:
    rules = objects[(kind, role)]["rules"]
    missing = [v for v in verbs if not _allowed(rules, group, resource, v)]
    assert missing == [], f"{kind} {role} may not {missing} {group}/{resource}"
    if kind == "Role":
        assert objects[(kind, role)]["metadata"]["namespace"] == "kube-system"
        binding = objects[("RoleBinding", role)]
        assert binding["roleRef"]["name"] == role
        assert binding["subjects"][0]["name"] == role


def test_agent_may_not_write_egress_specs(objects) -> None:
    rules = objects[("ClusterRole", "antrea-agent")]["rules"]
    assert not _allowed(rules, "crd.antrea.io", "egresses", "update")
    assert not _allowed(rules, "crd.antrea.io", "egresses", "patch")


# -- IPsec --------------------------------------------------------------------------------

def test_agent_gets_the_ipsec_psk_from_its_secret_only_if_it_exists(objects) -> None:
    from antrea_ipsec.plugin import PSK_ENV

    spec = objects[("DaemonSet", "antrea-agent")]["spec"]["template"]["spec"]
    (agent,) = [c for c in spec["containers"] if c["name"] == "antrea-agent"]
    env = {e["name"]: e for e in agent["env"]}
    ref = env[PSK_ENV]["valueFrom"]["secretKeyRef"]
    # optional: clusters without IPsec need no Secret for the agent to start.
    assert ref == {"name": "antrea-ipsec", "key": "psk", "optional": True}


def test_image_installs_the_packages_the_ipsec_plugin_asks_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from antrea_core.config.agent import AgentConfig
    from antrea_ipsec import plugin

    dockerfile = (ROOT / "deploy" / "images" / "Dockerfile").read_text()
    monkeypatch.setattr(plugin, "CHARON", tmp_path / "no-charon")  # it names what it needs
    errors = plugin.Plugin().antrea_validate_config(AgentConfig())
    (message,) = [e for e in errors if "apt-get install" in e]
    packages = message.split("apt-get install", 1)[1].split()
    assert packages and all(re.search(rf"\s{re.escape(p)}\s", dockerfile) for p in packages)
