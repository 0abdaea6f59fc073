"""The kinds the lab API server serves: one `ResourceInfo` per resource.

Built-in kinds are listed here; CustomResourceDefinitions add entries at run time (the
server owns that registration). Everything else (discovery, OpenAPI, tables, routing)
is derived from these records, so adding a stored-only kind is one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceInfo:
    group: str  # "" for the core group
    version: str
    resource: str  # plural, lower case: "pods"
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "binding", "token", "finalize", "scale"
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    builtin: bool = True  # strategic-merge patch allowed; custom resources are not builtin
    # For custom resources: the version's openAPIV3Schema and additionalPrinterColumns.
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


def _core(resource: str, kind: str, namespaced: bool, **kw: Any) -> ResourceInfo:
    return ResourceInfo("", "v1", resource, kind, namespaced, **kw)


BUILTIN: tuple[ResourceInfo, ...] = (
    _core("namespaces", "Namespace", False, short_names=("ns",),
          subresources=("status", "finalize")),
    _core("nodes", "Node", False, short_names=("no",), subresources=("status",)),
    _core("pods", "Pod", True, short_names=("po",), subresources=("status", "binding"),
          categories=("all",)),
    _core("services", "Service", True, short_names=("svc",), subresources=("status",),
          categories=("all",)),
    _core("endpoints", "Endpoints", True, short_names=("ep",), singular="endpoints"),
    _core("serviceaccounts", "ServiceAccount", True, short_names=("sa",),
          subresources=("token",)),
    _core("configmaps", "ConfigMap", True, short_names=("cm",)),
    _core("secrets", "Secret", True),
    _core("events", "Event", True, short_names=("ev",)),
    ResourceInfo("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceInfo("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True,
                 short_names=("netpol",)),
    ResourceInfo("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                 "CustomResourceDefinition", False, short_names=("crd", "crds"),
                 subresources=("status",)),
    ResourceInfo("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False,
                 verbs=("create",)),
    ResourceInfo("coordination.k8s.io", "v1", "leases", "Lease", True),
    # Stored-only kinds so that real manifests (Antrea's own included) apply unchanged.
    ResourceInfo("apps", "v1", "deployments", "Deployment", True, short_names=("deploy",),
                 subresources=("status",), categories=("all",)),
    ResourceInfo("apps", "v1", "daemonsets", "DaemonSet", True, short_names=("ds",),
                 subresources=("status",), categories=("all",)),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                 "ClusterRoleBinding", False),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceInfo("apiregistration.k8s.io", "v1", "apiservices", "APIService", False,
                 subresources=("status",)),
    ResourceInfo("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                 "MutatingWebhookConfiguration", False),
    ResourceInfo("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                 "ValidatingWebhookConfiguration", False),
    ResourceInfo("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",)),
)
