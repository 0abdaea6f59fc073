"""Authentication: static bearer tokens and ServiceAccount JWTs; TokenRequest/TokenReview.

Mirrors kube-apiserver's behaviour closely enough that clients cannot tell: the token
file has kube's `--token-auth-file` format, bound ServiceAccount tokens carry the same
claims (`kubernetes.io: {namespace, serviceaccount, pod, node}`) and authenticate to the
same usernames, groups and `extra` keys. Authorization is not done here (the lab allows
every authenticated user).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from .errors import APIError, FieldError, invalid

log = logging.getLogger("antrea_lab.apiserver.auth")

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Secret-based tokens made by the legacy token controller use this issuer.
LEGACY_ISSUER = "kubernetes/serviceaccount"
AUTHENTICATED = "system:authenticated"
MIN_EXPIRATION_SECONDS = 600  # kube rejects TokenRequests shorter than 10 minutes
DEFAULT_EXPIRATION_SECONDS = 3600
CLOCK_LEEWAY_SECONDS = 60

EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

# (kind, namespace, name, uid) -> does that object still exist with that uid?
ObjectChecker = Callable[[str, str, str, str], bool]


@dataclass
class UserInfo:
    username: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]
    # Audiences the credential was accepted for (the intersection kube reports).
    audiences: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.username, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


class AuthenticationError(Exception):
    """A credential that looked like ours but failed verification (expired, bad audience…)."""


@dataclass(frozen=True)
class _StaticUser:
    username: str
    uid: str
    groups: tuple[str, ...]


def _parse_token_file(path: Path) -> dict[str, _StaticUser]:
    users: dict[str, _StaticUser] = {}
    with path.open(newline="") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{lineno}: need at least token,user,uid")
            token, user, uid = (c.strip() for c in row[:3])
            group_field = row[3] if len(row) > 3 else ""
            groups = tuple(g.strip() for g in group_field.split(",") if g.strip())
            users[token] = _StaticUser(user, uid, groups)
    return users


class Authenticator:
    """Turns a bearer token into a `UserInfo`, or None when no authenticator accepts it."""

    def __init__(self, token_file: Path | None, sa_public_key_pem: bytes | None,
                 issuer: str = DEFAULT_ISSUER, *, audiences: Iterable[str] | None = None,
                 object_checker: ObjectChecker | None = None) -> None:
        self.issuer = issuer
        # kube-apiserver's --api-audiences defaults to the issuer.
        self.audiences = list(audiences) if audiences is not None else [issuer]
        self._token_file = token_file
        self._token_mtime: float | None = None
        self._static: dict[str, _StaticUser] = {}
        self._public_key = (serialization.load_pem_public_key(sa_public_key_pem)
                            if sa_public_key_pem else None)
        self._object_checker = object_checker
        self._reload_static()

    def _reload_static(self) -> None:
        # Re-read on change so that `antrea-lab` can add node identities to a live server.
        if self._token_file is None:
            return
        try:
            mtime = self._token_file.stat().st_mtime
        except FileNotFoundError:
            if self._static:
                log.warning("token file vanished path=%s", self._token_file)
            self._static, self._token_mtime = {}, None
            return
        if mtime == self._token_mtime:
            return
        self._static = _parse_token_file(self._token_file)
        self._token_mtime = mtime
        log.info("loaded static tokens path=%s users=%d", self._token_file, len(self._static))

    def authenticate(self, token: str, audiences: list[str] | None = None) -> UserInfo | None:
        """The user behind `token`, or None (unknown token, bad signature, expired …)."""
        try:
            return self.verify(token, audiences)
        except AuthenticationError as e:
            log.debug("token rejected reason=%s", e)
            return None

    def verify(self, token: str, audiences: list[str] | None = None) -> UserInfo | None:
        """Like `authenticate` but raises AuthenticationError saying why a JWT failed."""
        token = token.strip()
        if not token:
            return None
        self._reload_static()
        wanted = list(audiences) if audiences else list(self.audiences)
        static = self._static.get(token)
        if static is not None:
            # Audience-unaware credentials are valid only for the server's own audiences.
            accepted = [a for a in wanted if a in self.audiences]
            if not accepted:
                raise AuthenticationError("token audiences is invalid for the target audiences")
            groups = list(static.groups)
            if AUTHENTICATED not in groups:
                groups.append(AUTHENTICATED)
            return UserInfo(static.username, static.uid, groups, {}, accepted)
        if self._public_key is None or token.count(".") != 2:
            return None
        return self._verify_jwt(token, wanted)

    def _verify_jwt(self, token: str, wanted: list[str]) -> UserInfo | None:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return None
        iss = unverified.get("iss")
        if iss not in (self.issuer, LEGACY_ISSUER):
            return None  # not one of ours: let other authenticators (none here) try
        try:
            claims = jwt.decode(
                token, self._public_key, algorithms=["RS256"],  # type: ignore[arg-type]
                issuer=iss, leeway=CLOCK_LEEWAY_SECONDS,
                options={"verify_aud": False, "require": ["sub"]})
        except jwt.ExpiredSignatureError as e:
            raise AuthenticationError("service account token has expired") from e
        except jwt.InvalidTokenError as e:
            raise AuthenticationError(f"invalid bearer token, {e}") from e
        if iss == LEGACY_ISSUER:
            return self._legacy_user(claims, wanted)
        aud = claims.get("aud") or []
        if isinstance(aud, str):
            aud = [aud]
        accepted = [a for a in wanted if a in aud]
        if not accepted:
            raise AuthenticationError("token audiences is invalid for the target audiences")
        k8s = claims.get("kubernetes.io") or {}
        ns = k8s.get("namespace", "")
        sa = k8s.get("serviceaccount") or {}
        if not ns or not sa.get("name"):
            raise AuthenticationError("invalid bearer token, missing kubernetes.io claims")
        if claims["sub"] != f"system:serviceaccount:{ns}:{sa['name']}":
            raise AuthenticationError("invalid bearer token, subject does not match claims")
        self._check_exists("ServiceAccount", ns, sa["name"], sa.get("uid", ""))
        extra: dict[str, list[str]] = {}
        pod = k8s.get("pod")
        if pod:
            self._check_exists("Pod", ns, pod["name"], pod.get("uid", ""))
            extra[EXTRA_POD_NAME] = [pod["name"]]
            extra[EXTRA_POD_UID] = [pod.get("uid", "")]
        secret = k8s.get("secret")
        if secret:
            self._check_exists("Secret", ns, secret["name"], secret.get("uid", ""))
        node = k8s.get("node")
        if node:
            extra[EXTRA_NODE_NAME] = [node["name"]]
            extra[EXTRA_NODE_UID] = [node.get("uid", "")]
        if claims.get("jti"):
            extra[EXTRA_CREDENTIAL_ID] = [f"JTI={claims['jti']}"]
        return UserInfo(claims["sub"], sa.get("uid", ""), _sa_groups(ns), extra, accepted)

    def _legacy_user(self, claims: dict[str, Any], wanted: list[str]) -> UserInfo:
        ns = claims.get("kubernetes.io/serviceaccount/namespace", "")
        name = claims.get("kubernetes.io/serviceaccount/service-account.name", "")
        uid = claims.get("kubernetes.io/serviceaccount/service-account.uid", "")
        if not ns or not name:
            raise AuthenticationError("invalid bearer token, missing service account claims")
        self._check_exists("ServiceAccount", ns, name, uid)
        secret = claims.get("kubernetes.io/serviceaccount/secret.name")
        if secret:
            self._check_exists("Secret", ns, secret, "")
        return UserInfo(f"system:serviceaccount:{ns}:{name}", uid, _sa_groups(ns), {}, wanted)

    def _check_exists(self, kind: str, ns: str, name: str, uid: str) -> None:
        if self._object_checker is not None and not self._object_checker(kind, ns, name, uid):
            raise AuthenticationError(
                f"invalid bearer token, {kind.lower()} {ns}/{name} has been deleted")


def _sa_groups(namespace: str) -> list[str]:
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED]


def _key_id(public_key: Any) -> str:
    # kube derives the JWT "kid" from the DER public key the same way.
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


class TokenIssuer:
    """Signs bound ServiceAccount tokens (what TokenRequest returns)."""

    def __init__(self, private_key_pem: bytes, issuer: str = DEFAULT_ISSUER) -> None:
        self.issuer = issuer
        self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        self._kid = _key_id(self._key.public_key())

    def issue(self, namespace: str, sa_name: str, sa_uid: str, audiences: list[str],
              expiration_seconds: int, bound_object: dict[str, Any] | None
              ) -> tuple[str, dt.datetime]:
        """Sign a token; returns it with its expiry (UTC, whole seconds).

        `bound_object` is the TokenRequest's `spec.boundObjectRef` (kind, name, uid); a
        Pod reference may carry `node: {name, uid}` to add the node claims kube adds.
        """
        if expiration_seconds < MIN_EXPIRATION_SECONDS:
            raise invalid("TokenRequest", sa_name, [FieldError(
                "spec.expirationSeconds",
                f"Invalid value: {expiration_seconds}: may not specify a duration less than "
                "10 minutes")], group="authentication.k8s.io")
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        expiry = now + dt.timedelta(seconds=expiration_seconds)
        k8s: dict[str, Any] = {"namespace": namespace,
                               "serviceaccount": {"name": sa_name, "uid": sa_uid}}
        if bound_object:
            kind = bound_object.get("kind", "")
            ref = {"name": bound_object.get("name", ""), "uid": bound_object.get("uid", "")}
            if kind == "Pod":
                k8s["pod"] = ref
                node = bound_object.get("node")
                if node:
                    k8s["node"] = {"name": node.get("name", ""), "uid": node.get("uid", "")}
            elif kind == "Secret":
                k8s["secret"] = ref
            elif kind == "Node":
                k8s["node"] = ref
            else:
                raise invalid("TokenRequest", sa_name, [FieldError(
                    "spec.boundObjectRef.kind",
                    f'Unsupported value: "{kind}": supported values: "Pod", "Secret", "Node"',
                    "FieldValueNotSupported")], group="authentication.k8s.io")
        claims = {
            "iss": self.issuer,
            "sub": f"system:serviceaccount:{namespace}:{sa_name}",
            "aud": list(audiences) or [self.issuer],
            "exp": int(expiry.timestamp()),
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "jti": str(uuid.uuid4()),
            "kubernetes.io": k8s,
        }
        token = jwt.encode(claims, self._key, algorithm="RS256",  # type: ignore[arg-type]
                           headers={"kid": self._kid})
        return token, expiry


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_token_request(request: dict[str, Any], default_audiences: list[str]
                        ) -> tuple[list[str], int, dict[str, Any] | None]:
    """(audiences, expirationSeconds, boundObjectRef) of a TokenRequest, kube defaults applied."""
    spec = request.get("spec") or {}
    audiences = list(spec.get("audiences") or default_audiences)
    seconds = spec.get("expirationSeconds")
    if seconds is None:
        seconds = DEFAULT_EXPIRATION_SECONDS
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise APIError(400, "BadRequest", "spec.expirationSeconds must be an integer")
    return audiences, seconds, spec.get("boundObjectRef")


def token_request_response(request: dict[str, Any], token: str, expiry: dt.datetime
                           ) -> dict[str, Any]:
    """The TokenRequest the server answers with: the request, defaulted, plus status."""
    claims = jwt.decode(token, options={"verify_signature": False})
    meta = dict(request.get("metadata") or {})
    meta.setdefault("creationTimestamp", _rfc3339(dt.datetime.fromtimestamp(claims["iat"],
                                                                              dt.UTC)))
    spec = dict(request.get("spec") or {})
    aud = claims.get("aud") or []
    spec["audiences"] = [aud] if isinstance(aud, str) else list(aud)
    spec.setdefault("expirationSeconds", int(claims["exp"]) - int(claims["iat"]))
    spec.setdefault("boundObjectRef", None)
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": meta,
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": _rfc3339(expiry)},
    }


def token_review(authn: Authenticator, review: dict[str, Any]) -> dict[str, Any]:
    """Answer an authentication.k8s.io/v1 TokenReview."""
    spec = dict(review.get("spec") or {})
    token = spec.get("token") or ""
    audiences = list(spec.get("audiences") or [])
    status: dict[str, Any]
    try:
        user = authn.verify(token, audiences or None)
    except AuthenticationError as e:
        user, error = None, str(e)
    else:
        error = "invalid bearer token"
    if user is None:
        status = {"authenticated": False, "user": {}, "error": error}
    else:
        status = {"authenticated": True, "user": user.to_dict(),
                  "audiences": list(user.audiences)}
    meta = dict(review.get("metadata") or {})
    meta.setdefault("creationTimestamp", None)
    return {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": meta, "spec": spec, "status": status}


def self_subject_review(user: UserInfo, review: dict[str, Any] | None = None) -> dict[str, Any]:
    """Answer an authentication.k8s.io/v1 SelfSubjectReview (`kubectl auth whoami`)."""
    meta = dict((review or {}).get("metadata") or {})
    meta.setdefault("creationTimestamp", _rfc3339(dt.datetime.now(dt.UTC)))
    return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": meta, "status": {"userInfo": user.to_dict()}}
