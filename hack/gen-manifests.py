"""Generate deploy/kubernetes/antrea.yml: everything a real cluster needs to run Antrea.

The ConfigMap embeds deploy/kubernetes/conf/*.conf verbatim and the CRDs come from
antrea_core/apis/crds/*.yaml, so the manifest, the example configuration and the lab
cannot drift; `tests/unit/deploy` checks the committed file is what
this script prints. Run: `.venv/bin/python hack/gen-manifests.py > deploy/kubernetes/antrea.yml`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # antrea_core from this checkout, installed or not

from antrea_core.apis import crds  # noqa: E402

CONF = ROOT / "deploy" / "kubernetes" / "conf"
NS = "kube-system"
IMAGE = "antrea-python:latest"  # built from deploy/images/Dockerfile
LABELS = {"app": "antrea"}
CONTROLLER_PORT = 10349


def meta(name: str, namespaced: bool = True, **labels: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "labels": {**LABELS, **labels}}
    if namespaced:
        out["namespace"] = NS
    return out


def rule(groups: list[str], resources: list[str], verbs: list[str],
         names: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        out["resourceNames"] = names
    return out


WATCH = ["get", "list", "watch"]
UPDATE = ["update", "patch"]

CONTROLLER_RULES = [
    rule([""], ["pods", "namespaces", "nodes"], WATCH),
    rule(["networking.k8s.io"], ["networkpolicies"], WATCH),
    # Agents authenticate with their ServiceAccount token; the controller reviews it.
    rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
    # The CA agents use to verify the controller, published by the controller itself.
    rule([""], ["configmaps"], ["get", "create", "update", "patch"]),
    rule([""], ["secrets"], ["get"], ["antrea-controller-tls"]),
    # Egress: allocating Egress IPs from ExternalIPPools, and their statuses.
    rule(["crd.antrea.io"], ["egresses", "externalippools"], WATCH + UPDATE),
    rule(["crd.antrea.io"], ["egresses/status", "externalippools/status"], UPDATE),
]

AGENT_RULES = [
    rule([""], ["nodes"], WATCH),
    rule([""], ["nodes/status"], ["patch"]),
    rule([""], ["pods"], WATCH),
    # AntreaProxy.
    rule([""], ["services", "endpoints"], WATCH),
    rule(["discovery.k8s.io"], ["endpointslices"], WATCH),
    # Finding the controller (the antrea Service's endpoints) and its CA.
    rule([""], ["configmaps"], ["get", "list", "watch"]),
    # Egress: which Pods leave through which Egress IP, on which Node.
    rule([""], ["namespaces"], WATCH),
    rule(["crd.antrea.io"], ["egresses", "externalippools"], WATCH),
    rule(["crd.antrea.io"], ["egresses/status"], UPDATE),
]

# Namespaced (kube-system) rules of the agent: Leases for Egress Node liveness.
AGENT_NS_RULES = [
    rule(["coordination.k8s.io"], ["leases"],
         ["get", "list", "watch", "create", "update", "delete"]),
]


def rbac(component: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    name = f"antrea-{component}"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": meta(name, namespaced=False), "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": meta(name, namespaced=False),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NS}]},
    ]


def namespaced_rbac(component: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Role and RoleBinding in kube-system for the component's ServiceAccount."""
    name = f"antrea-{component}"
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": meta(name), "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": meta(name),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NS}]},
    ]


def host_path(name: str, path: str, kind: str = "DirectoryOrCreate") -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def config_map() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("antrea-config"),
            "data": {f.name: f.read_text() for f in sorted(CONF.glob("*.conf"))}}


def controller() -> list[dict[str, Any]]:
    selector = {**LABELS, "component": "antrea-controller"}
    pod = {
        "metadata": {"labels": selector},
        "spec": {
            "serviceAccountName": "antrea-controller",
            "hostNetwork": True,  # reachable by agents before any pod network exists
            "priorityClassName": "system-cluster-critical",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                            {"key": "node-role.kubernetes.io/control-plane",
                             "effect": "NoSchedule"}],
            "containers": [{
                "name": "antrea-controller", "image": IMAGE,
                "command": ["antrea-controller", "--config",
                            "/etc/antrea/antrea-controller.conf", "--cert-dir",
                            "/var/run/antrea/controller-certs"],
                "ports": [{"name": "api", "containerPort": CONTROLLER_PORT,
                           "protocol": "TCP"}],
                "readinessProbe": {"tcpSocket": {"port": "api"}, "periodSeconds": 10},
                "volumeMounts": [{"name": "antrea-config", "mountPath": "/etc/antrea",
                                  "readOnly": True},
                                 {"name": "certs", "mountPath":
                                  "/var/run/antrea/controller-certs"}],
            }],
            "volumes": [{"name": "antrea-config", "configMap": {"name": "antrea-config"}},
                        {"name": "certs", "emptyDir": {}}],
        },
    }
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": meta("antrea", component="antrea-controller"),
         "spec": {"selector": selector,
                  "ports": [{"name": "api", "port": 443, "targetPort": "api",
                             "protocol": "TCP"}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": meta("antrea-controller", component="antrea-controller"),
         "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                  "selector": {"matchLabels": selector}, "template": pod}},
    ]


def agent() -> dict[str, Any]:
    selector = {**LABELS, "component": "antrea-agent"}
    privileged = {"privileged": True}
    node_name = {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    # Read only with trafficEncryptionMode: ipsec; create the Secret before enabling it:
    # kubectl -n kube-system create secret generic antrea-ipsec --from-literal=psk=...
    ipsec_psk = {"name": "ANTREA_IPSEC_PSK", "valueFrom": {"secretKeyRef": {
        "name": "antrea-ipsec", "key": "psk", "optional": True}}}
    ovs_mounts = [{"name": "host-var-run-openvswitch", "mountPath": "/var/run/openvswitch"},
                  {"name": "host-var-lib-openvswitch", "mountPath": "/var/lib/openvswitch"},
                  {"name": "host-lib-modules", "mountPath": "/lib/modules", "readOnly": True}]
    pod = {
        "metadata": {"labels": selector},
        "spec": {
            "serviceAccountName": "antrea-agent",
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"operator": "Exists"}],  # every node needs its pod network
            "containers": [
                {"name": "antrea-agent", "image": IMAGE, "securityContext": privileged,
                 "command": ["antrea-agent", "--config", "/etc/antrea/antrea-agent.conf",
                             # The agent installs 10-antrea.conflist and antrea-cni itself.
                             "--cni-conf-dir", "/host/etc/cni/net.d",
                             "--cni-bin-dir", "/host/opt/cni/bin",
                             "--state-dir", "/var/lib/antrea"],
                 "env": [node_name, ipsec_psk],
                 "volumeMounts": [
                     {"name": "antrea-config", "mountPath": "/etc/antrea", "readOnly": True},
                     {"name": "host-cni-conf", "mountPath": "/host/etc/cni/net.d"},
                     {"name": "host-cni-bin", "mountPath": "/host/opt/cni/bin"},
                     {"name": "host-var-run-antrea", "mountPath": "/var/run/antrea"},
                     {"name": "host-var-lib-antrea", "mountPath": "/var/lib/antrea"},
                     # Pod netns paths handed over by kubelet (CNI_NETNS).
                     {"name": "host-var-run-netns", "mountPath": "/var/run/netns",
                      "mountPropagation": "HostToContainer"},
                     {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                     *ovs_mounts[:2]]},
                {"name": "antrea-ovs", "image": IMAGE, "securityContext": privileged,
                 "command": ["start-ovs"], "volumeMounts": ovs_mounts},
            ],
            "volumes": [
                {"name": "antrea-config", "configMap": {"name": "antrea-config"}},
                host_path("host-cni-conf", "/etc/cni/net.d"),
                host_path("host-cni-bin", "/opt/cni/bin"),
                host_path("host-var-run-antrea", "/var/run/antrea"),
                host_path("host-var-lib-antrea", "/var/lib/antrea"),
                host_path("host-var-run-netns", "/var/run/netns"),
                host_path("xtables-lock", "/run/xtables.lock", "FileOrCreate"),
                host_path("host-var-run-openvswitch", "/var/run/openvswitch"),
                host_path("host-var-lib-openvswitch", "/var/lib/openvswitch"),
                host_path("host-lib-modules", "/lib/modules", "Directory"),
            ],
        },
    }
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": meta("antrea-agent", component="antrea-agent"),
            "spec": {"selector": {"matchLabels": selector},
                     "updateStrategy": {"type": "RollingUpdate"}, "template": pod}}


def manifest() -> list[dict[str, Any]]:
    return [*crds.definitions(), *rbac("controller", CONTROLLER_RULES),
            *rbac("agent", AGENT_RULES), *namespaced_rbac("agent", AGENT_NS_RULES),
            config_map(), *controller(), agent()]


def render() -> str:
    header = ("# Generated by hack/gen-manifests.py from deploy/kubernetes/conf; do not edit.\n"
              "# kubectl apply -f deploy/kubernetes/antrea.yml\n")
    return header + yaml.safe_dump_all(manifest(), sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
