"""Fixtures of the control-plane API tests (defined in controlplane_env.py)."""

from controlplane_env import apiserver, authenticator, controller, tls

__all__ = ["apiserver", "authenticator", "controller", "tls"]
