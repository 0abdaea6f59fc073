"""Who is calling: bearer tokens checked with a Kubernetes TokenReview, mapped to a node.

A node identity is `system:node:<name>` in group `system:nodes`, or a ServiceAccount whose
token is bound to a node (TokenReview `extra` carries
`authentication.kubernetes.io/node-name`). Successful reviews are cached briefly so an
agent's reconnects do not each cost an API call; failures only for a few seconds, so a
token that just became valid is accepted promptly.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import kubernetes

log = logging.getLogger("antrea.controller.server.auth")

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
SUCCESS_TTL = 60.0
FAILURE_TTL = 5.0
CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller; `node` is set when it acts for a node (an agent)."""

    username: str
    groups: tuple[str, ...] = ()
    node: str | None = None


class AuthUnavailableError(Exception):
    """The token could not be checked (API server unreachable): neither valid nor invalid."""


class Authenticator(Protocol):
    def authenticate(self, token: str) -> Identity | None:
        """The caller behind `token`, None when the token is not valid. Raises
        AuthUnavailableError when it cannot tell."""


def identity_of(username: str, groups: list[str] | tuple[str, ...],
                extra: dict[str, list[str]] | None) -> Identity:
    """Map a Kubernetes user to an Identity (which node, if any, it speaks for)."""
    node = None
    if username.startswith(NODE_USER_PREFIX) and NODES_GROUP in groups:
        node = username[len(NODE_USER_PREFIX):] or None
    elif username.startswith(SERVICE_ACCOUNT_PREFIX):
        names = (extra or {}).get(EXTRA_NODE_NAME) or []
        node = names[0] if names and names[0] else None
    return Identity(username, tuple(groups), node)


class TokenReviewAuthenticator:
    """Authenticator asking the Kubernetes API (TokenReview) through the official client."""

    def __init__(self, api_client: kubernetes.client.ApiClient, *,
                 success_ttl: float = SUCCESS_TTL, failure_ttl: float = FAILURE_TTL,
                 audiences: list[str] | None = None) -> None:
        self._api = kubernetes.client.AuthenticationV1Api(api_client)
        self._success_ttl = success_ttl
        self._failure_ttl = failure_ttl
        self._audiences = audiences
        self._lock = threading.Lock()
        # sha256(token) -> (expires at, identity or None)
        self._cache: dict[bytes, tuple[float, Identity | None]] = {}

    def authenticate(self, token: str) -> Identity | None:
        if not token:
            return None
        key = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        identity = self._review(token)
        ttl = self._success_ttl if identity is not None else self._failure_ttl
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
            self._cache[key] = (now + ttl, identity)
        return identity

    def _review(self, token: str) -> Identity | None:
        spec = kubernetes.client.V1TokenReviewSpec(token=token, audiences=self._audiences)
        try:
            review = self._api.create_token_review(kubernetes.client.V1TokenReview(spec=spec))
        except kubernetes.client.ApiException as e:
            raise AuthUnavailableError(f"TokenReview failed: {e.status} {e.reason}") from e
        except Exception as e:  # connection refused, TLS, timeouts (urllib3 errors)
            raise AuthUnavailableError(f"TokenReview failed: {e}") from e
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            log.info("token rejected error=%s", status.error if status else None)
            return None
        user = status.user
        return identity_of(user.username or "", tuple(user.groups or ()), user.extra)
