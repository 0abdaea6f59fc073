"""Static tokens, ServiceAccount JWTs, TokenRequest and TokenReview."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from antrea_lab.apiserver.auth import (
    Authenticator,
    TokenIssuer,
    parse_token_request,
    self_subject_review,
    token_request_response,
    token_review,
)
from antrea_lab.apiserver.errors import APIError

pytestmark = pytest.mark.unit

ISS = "https://kubernetes.default.svc.cluster.local"


def _keypair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return _keypair()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.csv"
    path.write_text('admintok,admin,uid-1,"system:masters"\n'
                    "ctrltok,system:kube-controller-manager,uid-2\n"
                    'nodetok,system:node:node1,uid-3,"system:nodes,extra:group"\n')
    return path


def test_static_token_maps_to_user_with_groups(token_file: Path) -> None:
    authn = Authenticator(token_file, None)
    user = authn.authenticate("admintok")
    assert user is not None
    assert (user.username, user.uid) == ("admin", "uid-1")
    assert user.groups == ["system:masters", "system:authenticated"]
    node = authn.authenticate("nodetok")
    assert node is not None and node.groups == ["system:nodes", "extra:group",
                                                "system:authenticated"]
    ctrl = authn.authenticate("ctrltok")
    assert ctrl is not None and ctrl.groups == ["system:authenticated"]
    assert authn.authenticate("nope") is None
    assert authn.authenticate("") is None


def test_token_file_changes_are_picked_up(token_file: Path) -> None:
    authn = Authenticator(token_file, None)
    assert authn.authenticate("newtok") is None
    token_file.write_text(token_file.read_text() + "newtok,system:node:node2,uid-4\n")
    st = token_file.stat()
    os.utime(token_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    user = authn.authenticate("newtok")
    assert user is not None and user.username == "system:node:node2"


def test_pod_bound_token_authenticates_as_service_account(keys: tuple[bytes, bytes]) -> None:
    priv, pub = keys
    issuer = TokenIssuer(priv)
    token, expiry = issuer.issue("kube-system", "antrea-agent", "sa-uid", [ISS], 3600,
                                 {"kind": "Pod", "name": "antrea-agent-x", "uid": "pod-uid",
                                  "node": {"name": "node1", "uid": "node-uid"}})
    now = dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=3590) < expiry - now <= dt.timedelta(seconds=3600)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "system:serviceaccount:kube-system:antrea-agent"
    assert claims["aud"] == [ISS] and claims["iss"] == ISS
    assert claims["kubernetes.io"]["pod"] == {"name": "antrea-agent-x", "uid": "pod-uid"}
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(token)["kid"]

    user = Authenticator(None, pub).authenticate(token)
    assert user is not None
    assert user.username == "system:serviceaccount:kube-system:antrea-agent"
    assert user.uid == "sa-uid"
    assert user.groups == ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                           "system:authenticated"]
    assert user.extra["authentication.kubernetes.io/pod-name"] == ["antrea-agent-x"]
    assert user.extra["authentication.kubernetes.io/pod-uid"] == ["pod-uid"]
    assert user.extra["authentication.kubernetes.io/node-name"] == ["node1"]
    assert user.extra["authentication.kubernetes.io/credential-id"] == [f"JTI={claims['jti']}"]


def test_token_signed_by_another_key_is_rejected(keys: tuple[bytes, bytes]) -> None:
    other_priv, _ = _keypair()
    token, _ = TokenIssuer(other_priv).issue("default", "default", "u", [ISS], 3600, None)
    assert Authenticator(None, keys[1]).authenticate(token) is None


def test_expired_token_is_rejected(keys: tuple[bytes, bytes]) -> None:
    priv, pub = keys
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"iss": ISS, "sub": "system:serviceaccount:default:default", "aud": [ISS],
              "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600,
              "kubernetes.io": {"namespace": "default",
                                "serviceaccount": {"name": "default", "uid": "u"}}}
    token = jwt.encode(claims, serialization.load_pem_private_key(priv, None),
                       algorithm="RS256")
    authn = Authenticator(None, pub)
    assert authn.authenticate(token) is None
    review = token_review(authn, {"apiVersion": "authentication.k8s.io/v1",
                                  "kind": "TokenReview", "spec": {"token": token}})
    assert review["status"]["authenticated"] is False
    assert "expired" in review["status"]["error"]


def test_wrong_audience_is_rejected(keys: tuple[bytes, bytes]) -> None:
    priv, pub = keys
    token, _ = TokenIssuer(priv).issue("default", "default", "u", ["vault"], 3600, None)
    authn = Authenticator(None, pub)
    assert authn.authenticate(token) is None
    user = authn.authenticate(token, audiences=["vault"])
    assert user is not None and user.audiences == ["vault"]


def test_deleted_service_account_invalidates_token(keys: tuple[bytes, bytes]) -> None:
    priv, pub = keys
    token, _ = TokenIssuer(priv).issue("default", "sa", "uid-old", [ISS], 3600, None)
    live = {("ServiceAccount", "default", "sa", "uid-new")}
    authn = Authenticator(None, pub, object_checker=lambda *key: key in live)
    assert authn.authenticate(token) is None
    live.add(("ServiceAccount", "default", "sa", "uid-old"))
    assert authn.authenticate(token) is not None


def test_legacy_secret_token_is_accepted(keys: tuple[bytes, bytes]) -> None:
    priv, pub = keys
    claims = {"iss": "kubernetes/serviceaccount",
              "sub": "system:serviceaccount:ns1:builder",
              "kubernetes.io/serviceaccount/namespace": "ns1",
              "kubernetes.io/serviceaccount/secret.name": "builder-token",
              "kubernetes.io/serviceaccount/service-account.name": "builder",
              "kubernetes.io/serviceaccount/service-account.uid": "u9"}
    token = jwt.encode(claims, serialization.load_pem_private_key(priv, None),
                       algorithm="RS256")
    user = Authenticator(None, pub).authenticate(token)
    assert user is not None and user.username == "system:serviceaccount:ns1:builder"
    assert "system:serviceaccounts:ns1" in user.groups


def test_short_token_request_is_invalid(keys: tuple[bytes, bytes]) -> None:
    with pytest.raises(APIError) as e:
        TokenIssuer(keys[0]).issue("default", "default", "u", [ISS], 599, None)
    assert e.value.code == 422
    assert e.value.causes[0].path == "spec.expirationSeconds"


def test_token_request_round_trip(keys: tuple[bytes, bytes]) -> None:
    priv = keys[0]
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "metadata": {"name": "default", "namespace": "default"},
               "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                           "name": "p", "uid": "pu"}}}
    audiences, seconds, bound = parse_token_request(request, [ISS])
    assert (audiences, seconds) == ([ISS], 3600)
    token, expiry = TokenIssuer(priv).issue("default", "default", "u", audiences, seconds, bound)
    resp = token_request_response(request, token, expiry)
    assert resp["kind"] == "TokenRequest"
    assert resp["status"]["token"] == token
    assert resp["status"]["expirationTimestamp"] == expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert resp["spec"]["audiences"] == [ISS]
    assert resp["spec"]["expirationSeconds"] == 3600
    assert resp["spec"]["boundObjectRef"]["name"] == "p"
    assert "creationTimestamp" in resp["metadata"]


def test_token_review_of_valid_token(keys: tuple[bytes, bytes], token_file: Path) -> None:
    priv, pub = keys
    authn = Authenticator(token_file, pub)
    token, _ = TokenIssuer(priv).issue("default", "web", "w-uid", [ISS], 3600, None)
    review = token_review(authn, {"kind": "TokenReview",
                                  "apiVersion": "authentication.k8s.io/v1",
                                  "spec": {"token": token}})
    status = review["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == "system:serviceaccount:default:web"
    assert status["user"]["uid"] == "w-uid"
    assert status["audiences"] == [ISS]
    assert review["spec"]["token"] == token
    static = token_review(authn, {"spec": {"token": "admintok"}})["status"]
    assert static["user"]["groups"] == ["system:masters", "system:authenticated"]
    bogus = token_review(authn, {"spec": {"token": "x.y.z"}})["status"]
    assert bogus["authenticated"] is False and bogus["error"]


def test_self_subject_review_reports_the_caller(token_file: Path) -> None:
    user = Authenticator(token_file, None).authenticate("nodetok")
    assert user is not None
    review = self_subject_review(user, {"kind": "SelfSubjectReview"})
    assert review["kind"] == "SelfSubjectReview"
    assert review["status"]["userInfo"] == {
        "username": "system:node:node1", "uid": "uid-3",
        "groups": ["system:nodes", "extra:group", "system:authenticated"]}
