"""NetworkPolicy computation: Kubernetes NetworkPolicies → AppliedToGroups, AddressGroups
and internal NetworkPolicies with their spans (see `computation`)."""

from antrea_core.controller.networkpolicy.computation import NetworkPolicyController
from antrea_core.controller.networkpolicy.spec import PolicyError, parse_network_policy

__all__ = ["NetworkPolicyController", "PolicyError", "parse_network_policy"]
