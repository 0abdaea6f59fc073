"""The lab PKI: CA, serving certificate with SANs, SA key pair, kubeconfig."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import ExtendedKeyUsageOID

from antrea_lab.apiserver.pki import ensure_pki, write_kubeconfig

pytestmark = pytest.mark.unit

IPS = ["127.0.0.1", "192.168.77.1", "10.96.0.1"]
DNS = ["localhost", "kubernetes", "kubernetes.default"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ensure_pki(d, IPS, DNS)
    return d


def test_serving_cert_is_signed_by_ca_and_carries_sans(pki: Path) -> None:
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    crt = x509.load_pem_x509_certificate((pki / "apiserver.crt").read_bytes())
    assert ca.subject.rfc4514_string() == "CN=antrea-lab-ca"
    assert crt.issuer == ca.subject
    ca.public_key().verify(crt.signature, crt.tbs_certificate_bytes, padding.PKCS1v15(),
                           crt.signature_hash_algorithm)
    san = crt.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(i) for i in IPS]
    assert san.get_values_for_type(x509.DNSName) == DNS
    eku = crt.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3649


def test_python_ssl_accepts_the_chain_for_an_ip_san(pki: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    # Handshake in memory: proves the key matches and the IP SAN verifies.
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = ctx.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, srv):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    client.do_handshake()  # raises if verification failed
    assert client.version() is not None


def test_keys_are_private(pki: Path) -> None:
    for name in ("ca.key", "apiserver.key", "sa.key"):
        assert stat.S_IMODE((pki / name).stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in (pki / "sa.pub").read_bytes()


def test_second_run_keeps_existing_files(tmp_path: Path) -> None:
    ensure_pki(tmp_path, IPS, DNS)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    ensure_pki(tmp_path, IPS, DNS)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_new_ca_reissues_serving_cert(tmp_path: Path) -> None:
    ensure_pki(tmp_path, IPS, DNS)
    (tmp_path / "ca.crt").unlink()
    (tmp_path / "ca.key").unlink()
    ensure_pki(tmp_path, IPS, DNS)
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    crt = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    ca.public_key().verify(crt.signature, crt.tbs_certificate_bytes, padding.PKCS1v15(),
                           crt.signature_hash_algorithm)


def test_kubeconfig_embeds_ca_and_token(pki: Path, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "kubeconfig"
    write_kubeconfig(path, "https://127.0.0.1:6443", pki / "ca.crt", "tok", "admin")
    cfg = yaml.safe_load(path.read_text())
    assert cfg["current-context"] == "antrea-lab"
    cluster = cfg["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == \
        (pki / "ca.crt").read_bytes()
    assert cfg["users"][0] == {"name": "admin", "user": {"token": "tok"}}
    assert cfg["contexts"][0]["context"] == {"cluster": "antrea-lab", "user": "admin"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_kubernetes_client_loads_the_kubeconfig(pki: Path, tmp_path: Path) -> None:
    from kubernetes import client, config

    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, "https://127.0.0.1:6443", pki / "ca.crt", "tok", "admin")
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg)
    assert cfg.host == "https://127.0.0.1:6443"
    assert cfg.api_key["BearerToken"] == "Bearer tok"
    assert Path(cfg.ssl_ca_cert).read_bytes() == (pki / "ca.crt").read_bytes()
