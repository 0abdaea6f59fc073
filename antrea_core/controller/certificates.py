"""The controller's serving certificate and the CA agents trust.

Self-signed mode (``selfSignedCert: true``, the default, as in Antrea): a CA and a
serving certificate signed by it are created in ``--cert-dir`` and reused across restarts
(agents keep trusting the CA they already have); the serving certificate is re-issued
when it nears expiry or lacks a SAN we now need. The CA is published in ConfigMap
``kube-system/antrea-ca`` (key ``ca.crt``), where agents read it.

Otherwise the certificate comes from Secret ``kube-system/antrea-controller-tls`` with
keys ``ca.crt``, ``tls.crt`` and ``tls.key`` (e.g. made by cert-manager).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes.client.exceptions import ApiException

from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import CONFIG_MAPS, SECRETS

log = logging.getLogger("antrea.controller.certificates")

NAMESPACE = "kube-system"
CA_CONFIGMAP = "antrea-ca"
CA_KEY = "ca.crt"
TLS_SECRET = "antrea-controller-tls"
SECRET_KEYS = ("ca.crt", "tls.crt", "tls.key")
SERVICE_DNS_NAMES = ("antrea", "antrea.kube-system", "antrea.kube-system.svc")
CA_DAYS = 3650
SERVING_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)


class CertificateError(RuntimeError):
    """The serving certificate could not be created, read or published. `transient`:
    the API server failed or was unreachable, so trying again may work."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def _transient(exc: ApiException) -> bool:
    return exc.status in (0, 429) or exc.status >= 500


@dataclass(frozen=True)
class ServingCertificate:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, secret: bool) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _sans(ips: Sequence[str], dns_names: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return names


def _new_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = f"antrea-ca@{int(_now().timestamp())}"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _new_serving(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                 ips: Sequence[str], dns_names: Sequence[str]
                 ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        "antrea-controller")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=SERVING_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(_sans(ips, dns_names)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _load(crt: Path, key: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not (crt.exists() and key.exists()):
        return None
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except ValueError as exc:
        log.warning("ignoring unreadable certificate path=%s error=%s", crt, exc)
        return None
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        return None
    return cert, private


def _serving_still_good(cert: x509.Certificate, ca: x509.Certificate, ips: Sequence[str],
                        dns_names: Sequence[str]) -> bool:
    if cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    try:
        have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    want = set(_sans(ips, dns_names))
    return want <= set(have)


def self_signed(cert_dir: Path, ips: Sequence[str],
                dns_names: Sequence[str] = SERVICE_DNS_NAMES) -> ServingCertificate:
    """The CA and serving certificate in ``cert_dir`` (ca.crt/ca.key, tls.crt/tls.key),
    created or re-issued as needed; existing ones are kept when still good."""
    try:
        cert_dir.mkdir(parents=True, exist_ok=True)
        ca_paths = cert_dir / "ca.crt", cert_dir / "ca.key"
        tls_paths = cert_dir / "tls.crt", cert_dir / "tls.key"
        loaded = _load(*ca_paths)
        if loaded is None or loaded[0].not_valid_after_utc - RENEW_BEFORE < _now():
            ca, ca_key = _new_ca()
            _write(ca_paths[1], _key_pem(ca_key), secret=True)
            _write(ca_paths[0], ca.public_bytes(serialization.Encoding.PEM), secret=False)
            log.info("created CA path=%s", ca_paths[0])
        else:
            ca, ca_key = loaded
        serving = _load(*tls_paths)
        if serving is None or not _serving_still_good(serving[0], ca, ips, dns_names):
            cert, key = _new_serving(ca, ca_key, ips, dns_names)
            _write(tls_paths[1], _key_pem(key), secret=True)
            _write(tls_paths[0], cert.public_bytes(serialization.Encoding.PEM), secret=False)
            log.info("issued serving certificate path=%s ips=%s dns=%s", tls_paths[0],
                     ",".join(ips), ",".join(dns_names))
        return ServingCertificate(ca_paths[0].read_bytes(), tls_paths[0].read_bytes(),
                                  tls_paths[1].read_bytes())
    except OSError as exc:
        raise CertificateError(f"cannot keep certificates in {cert_dir}: {exc}") from None


def from_secret(client: RawClient, namespace: str = NAMESPACE,
                name: str = TLS_SECRET) -> ServingCertificate:
    """The certificate given in Secret namespace/name (selfSignedCert: false)."""
    where = f"Secret {namespace}/{name}"
    try:
        secret = client.get(SECRETS, name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise CertificateError(f"{where} does not exist (selfSignedCert is false, so it "
                                   f"must provide {', '.join(SECRET_KEYS)})") from None
        raise CertificateError(f"cannot read {where}: HTTP {exc.status} {exc.reason}",
                               transient=_transient(exc)) from None
    data = secret.get("data") or {}
    values: dict[str, bytes] = {}
    for key in SECRET_KEYS:
        if not data.get(key):
            raise CertificateError(f"{where} has no key {key!r} (selfSignedCert is false: "
                                   f"it must provide {', '.join(SECRET_KEYS)})")
        try:
            values[key] = base64.b64decode(data[key], validate=True)
        except ValueError:
            raise CertificateError(f"{where} key {key!r} is not valid base64") from None
    try:
        x509.load_pem_x509_certificate(values["tls.crt"])
        x509.load_pem_x509_certificate(values["ca.crt"])
        serialization.load_pem_private_key(values["tls.key"], password=None)
    except ValueError as exc:
        raise CertificateError(f"{where} holds an unreadable certificate or key: {exc}"
                               ) from None
    return ServingCertificate(values["ca.crt"], values["tls.crt"], values["tls.key"])


def publish_ca(client: RawClient, ca_pem: bytes, namespace: str = NAMESPACE,
               name: str = CA_CONFIGMAP) -> None:
    """Create or update ConfigMap namespace/name so that data[ca.crt] is the CA."""
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app": "antrea"}},
            "data": {CA_KEY: ca_pem.decode()}}
    try:
        try:
            current = client.get(CONFIG_MAPS, name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            client.create(CONFIG_MAPS, body, namespace)
            log.info("published CA configmap=%s/%s", namespace, name)
            return
        if (current.get("data") or {}).get(CA_KEY) != body["data"][CA_KEY]:
            client.patch(CONFIG_MAPS, name, {"data": body["data"]}, namespace)
            log.info("updated CA configmap=%s/%s", namespace, name)
    except ApiException as exc:
        raise CertificateError(f"cannot publish the CA in ConfigMap {namespace}/{name}: "
                               f"HTTP {exc.status} {exc.reason}",
                               transient=_transient(exc)) from None
