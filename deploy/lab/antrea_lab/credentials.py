"""The lab's identities: the PKI, the static token file and one kubeconfig per client."""

from __future__ import annotations

import csv
import io
import secrets
from pathlib import Path

from antrea_lab.apiserver.pki import ensure_pki, write_kubeconfig
from antrea_lab.labdir import LabDir
from antrea_lab.node.topology import GATEWAY_IP as CONTROL_PLANE_IP

SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service, first address of the Service CIDR
DNS_SANS = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"]
CONTROLLER_MANAGER = "system:kube-controller-manager"
# antrea-controller's identity: its ServiceAccount, as in a real cluster.
ANTREA_CONTROLLER = "system:serviceaccount:kube-system:antrea-controller"
SERVICE_ACCOUNT_GROUPS = "system:serviceaccounts,system:serviceaccounts:kube-system"


def controller_kubeconfig(lab: LabDir) -> Path:
    """antrea-controller's kubeconfig (its own ServiceAccount identity)."""
    return lab.path / "antrea-controller.kubeconfig"


def _read_tokens(path: Path) -> dict[str, str]:
    """user -> token from a kube-apiserver token file."""
    if not path.exists():
        return {}
    return {row[1]: row[0] for row in csv.reader(path.read_text().splitlines()) if row}


def ensure_credentials(lab: LabDir, nodes: list[str], api_port: int) -> None:
    """Create the PKI, a token per identity (kept across `up`s) and the kubeconfigs."""
    ensure_pki(lab.pki, ["127.0.0.1", CONTROL_PLANE_IP, SERVICE_IP], DNS_SANS)
    tokens = _read_tokens(lab.tokens)
    identities = [("admin", "system:masters"), (CONTROLLER_MANAGER, ""),
                  (ANTREA_CONTROLLER, SERVICE_ACCOUNT_GROUPS)]
    identities += [(f"system:node:{n}", "system:nodes") for n in nodes]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for user, groups in identities:
        token = tokens.get(user) or secrets.token_urlsafe(32)
        tokens[user] = token
        writer.writerow([token, user, user, groups])
    lab.tokens.parent.mkdir(parents=True, exist_ok=True)
    lab.tokens.write_text(buf.getvalue())
    lab.tokens.chmod(0o600)
    ca = lab.pki / "ca.crt"
    local = f"https://127.0.0.1:{api_port}"
    write_kubeconfig(lab.kubeconfig, local, ca, tokens["admin"], "admin",
                     context=f"antrea-lab-{lab.name}")
    write_kubeconfig(lab.path / "controller-manager.kubeconfig", local, ca,
                     tokens[CONTROLLER_MANAGER], CONTROLLER_MANAGER,
                     context=f"antrea-lab-{lab.name}")
    # antrea-controller runs in the underlay netns: it reaches the API at the
    # control-plane IP, as the nodes do.
    write_kubeconfig(controller_kubeconfig(lab), f"https://{CONTROL_PLANE_IP}:{api_port}", ca,
                     tokens[ANTREA_CONTROLLER], ANTREA_CONTROLLER,
                     context=f"antrea-lab-{lab.name}")
    for node in nodes:
        write_kubeconfig(lab.node_kubeconfig(node), f"https://{CONTROL_PLANE_IP}:{api_port}",
                         ca, tokens[f"system:node:{node}"], f"system:node:{node}",
                         context=f"antrea-lab-{lab.name}")
