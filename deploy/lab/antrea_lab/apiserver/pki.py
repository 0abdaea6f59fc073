"""The lab's certificates and keys: a CA, the API server's serving cert, the SA key pair.

kubectl sends bearer tokens only over TLS, so the lab serves https with a certificate
whose SANs cover every address clients use (loopback, the underlay gateway, the
`kubernetes` Service IP). Files are created only when missing so that restarts keep
the identities clients already trust.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
import os
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("antrea_lab.apiserver.pki")

CA_NAME = "antrea-lab-ca"
CA_DAYS = 3650
SERVING_DAYS = 3650


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(path: Path, data: bytes, secret: bool) -> None:
    # Create with the final mode so a key is never briefly world-readable.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key")
    return key


def _ensure_ca(pki_dir: Path) -> tuple[x509.Certificate, rsa.RSAPrivateKey, bool]:
    crt_path, key_path = pki_dir / "ca.crt", pki_dir / "ca.key"
    if crt_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(crt_path.read_bytes())
        return cert, _load_key(key_path), False
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), secret=True)
    _write(crt_path, cert.public_bytes(serialization.Encoding.PEM), secret=False)
    log.info("created lab CA path=%s", crt_path)
    return cert, key, True


def _ensure_serving(pki_dir: Path, ca: x509.Certificate, ca_key: rsa.RSAPrivateKey,
                    ip_sans: list[str], dns_sans: list[str], reissue: bool) -> None:
    crt_path, key_path = pki_dir / "apiserver.crt", pki_dir / "apiserver.key"
    if not reissue and crt_path.exists() and key_path.exists():
        return
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_sans]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_sans]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVING_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=True, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), secret=True)
    _write(crt_path, cert.public_bytes(serialization.Encoding.PEM), secret=False)
    log.info("created serving certificate path=%s ip_sans=%s dns_sans=%s",
             crt_path, ip_sans, dns_sans)


def _ensure_sa_keys(pki_dir: Path) -> None:
    key_path, pub_path = pki_dir / "sa.key", pki_dir / "sa.pub"
    if key_path.exists() and pub_path.exists():
        return
    key = _load_key(key_path) if key_path.exists() else _new_key()
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    if not key_path.exists():
        _write(key_path, _key_pem(key), secret=True)
    _write(pub_path, pub, secret=False)
    log.info("created ServiceAccount signing key path=%s", key_path)


def ensure_pki(pki_dir: Path, ip_sans: list[str], dns_sans: list[str]) -> None:
    """Create whatever of the lab PKI is missing under `pki_dir`; keep what exists."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca, ca_key, new_ca = _ensure_ca(pki_dir)
    # A new CA invalidates any serving cert left over from an older one.
    _ensure_serving(pki_dir, ca, ca_key, ip_sans, dns_sans, reissue=new_ca)
    _ensure_sa_keys(pki_dir)


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str, user: str,
                     context: str = "antrea-lab") -> None:
    """Write a token-auth kubeconfig that embeds the CA (works from any cwd or netns)."""
    ca_data = base64.b64encode(ca_file.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context,
                      "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # It holds a bearer token: same protection as a key.
    _write(path, yaml.safe_dump(config, sort_keys=False).encode(), secret=True)
