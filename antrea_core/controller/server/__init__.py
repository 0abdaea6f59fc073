"""The controller's gRPC API: span-filtered Watch streams for agents, queries for antctl."""

from antrea_core.controller.server.auth import (
    Authenticator,
    AuthUnavailableError,
    Identity,
    TokenReviewAuthenticator,
)
from antrea_core.controller.server.service import ControlPlaneServer

__all__ = ["AuthUnavailableError", "Authenticator", "ControlPlaneServer", "Identity",
           "TokenReviewAuthenticator"]
