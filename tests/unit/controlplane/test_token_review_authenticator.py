"""TokenReviewAuthenticator: identity mapping to nodes, caching of successes only."""

from __future__ import annotations

from types import SimpleNamespace

import kubernetes
import pytest

from antrea_core.controller.server.auth import (
    AuthUnavailableError,
    Identity,
    TokenReviewAuthenticator,
    identity_of,
)

pytestmark = pytest.mark.unit


def test_node_user_and_node_bound_service_account_map_to_their_node():
    assert identity_of("system:node:n1", ["system:nodes"], None).node == "n1"
    # Without the nodes group the name alone does not make a node.
    assert identity_of("system:node:n1", ["system:authenticated"], None).node is None
    sa = identity_of("system:serviceaccount:kube-system:antrea-agent",
                     ["system:serviceaccounts"],
                     {"authentication.kubernetes.io/node-name": ["n2"]})
    assert sa.node == "n2"
    assert identity_of("admin", ["system:masters"], None) == Identity(
        "admin", ("system:masters",), None)


class FakeReviews:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.calls = 0
        self.fail = False

    def create_token_review(self, review):
        self.calls += 1
        if self.fail:
            raise kubernetes.client.ApiException(status=503, reason="Service Unavailable")
        user = self.users.get(review.spec.token)
        status = SimpleNamespace(
            authenticated=user is not None, error=None if user else "invalid bearer token",
            user=SimpleNamespace(username=user, groups=["system:nodes"], extra=None)
            if user else None)
        return SimpleNamespace(status=status)


def authenticator(reviews: FakeReviews, **kw) -> TokenReviewAuthenticator:
    authn = TokenReviewAuthenticator(kubernetes.client.ApiClient(), **kw)
    authn._api = reviews  # the seam: everything else is the real code
    return authn


def test_successful_reviews_are_cached_failures_are_not():
    reviews = FakeReviews({"good": "system:node:n1"})
    authn = authenticator(reviews, failure_ttl=0.0)
    assert authn.authenticate("good").node == "n1"
    assert authn.authenticate("good").node == "n1"
    assert reviews.calls == 1
    assert authn.authenticate("bad") is None
    reviews.users["bad"] = "system:node:n2"  # the token became valid
    assert authn.authenticate("bad").node == "n2"
    assert reviews.calls == 3


def test_cached_success_expires():
    reviews = FakeReviews({"good": "system:node:n1"})
    authn = authenticator(reviews, success_ttl=0.0)
    authn.authenticate("good")
    del reviews.users["good"]  # revoked
    assert authn.authenticate("good") is None


def test_api_errors_are_unavailable_not_invalid():
    reviews = FakeReviews({})
    reviews.fail = True
    with pytest.raises(AuthUnavailableError):
        authenticator(reviews).authenticate("x")
    assert authenticator(reviews).authenticate("") is None
