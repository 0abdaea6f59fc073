"""Egress in antrea-controller: allocating Egress IPs from ExternalIPPools."""

from antrea_core.controller.egress.controller import EgressIPController

__all__ = ["EgressIPController"]
