"""Serving certificate: self-signed CA + cert (SANs, TLS handshake, reuse across restarts),
the antrea-ca ConfigMap, and the Secret mode's errors."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from antrea_core.controller import certificates
from antrea_core.controller.certificates import CertificateError, ServingCertificate
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import CONFIG_MAPS, SECRETS

pytestmark = pytest.mark.unit


def sans(pem: bytes) -> tuple[set[str], set[str]]:
    ext = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return (set(ext.get_values_for_type(x509.DNSName)),
            {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)})


def handshake(tmp: Path, cert: ServingCertificate, server_name: str) -> str:
    """TLS handshake on loopback: server with the serving cert, client trusting the CA."""
    (tmp / "c.pem").write_bytes(cert.cert_pem)
    (tmp / "k.pem").write_bytes(cert.key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    client_ctx = ssl.create_default_context(cadata=cert.ca_pem.decode())
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except ssl.SSLError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
                client_ctx.wrap_socket(sock, server_hostname=server_name) as tls:
            return tls.recv(2).decode()
    finally:
        listener.close()
        t.join(5)


def test_self_signed_cert_has_service_and_ip_sans_and_handshakes(tmp_path: Path):
    cert = certificates.self_signed(tmp_path / "certs", ["127.0.0.1", "192.168.77.1"])
    dns, ips = sans(cert.cert_pem)
    assert dns == {"antrea", "antrea.kube-system", "antrea.kube-system.svc"}
    assert ips == {"127.0.0.1", "192.168.77.1"}
    ca = x509.load_pem_x509_certificate(cert.ca_pem)
    x509.load_pem_x509_certificate(cert.cert_pem).verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert handshake(tmp_path, cert, "antrea.kube-system.svc") == "ok"
    assert (tmp_path / "certs" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "certs" / "tls.key").stat().st_mode & 0o777 == 0o600


def test_handshake_with_a_name_not_in_the_cert_fails(tmp_path: Path):
    cert = certificates.self_signed(tmp_path / "certs", ["127.0.0.1"])
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tmp_path, cert, "other.example")


def test_restart_reuses_ca_and_cert_and_reissues_only_for_a_new_ip(tmp_path: Path):
    first = certificates.self_signed(tmp_path, ["10.0.0.1"])
    again = certificates.self_signed(tmp_path, ["10.0.0.1"])
    assert again == first
    moved = certificates.self_signed(tmp_path, ["10.0.0.2"])
    assert moved.ca_pem == first.ca_pem  # agents keep trusting the CA they have
    assert moved.cert_pem != first.cert_pem
    assert sans(moved.cert_pem)[1] == {"10.0.0.2"}


def test_a_missing_ca_reissues_both(tmp_path: Path):
    first = certificates.self_signed(tmp_path, ["10.0.0.1"])
    (tmp_path / "ca.key").unlink()
    second = certificates.self_signed(tmp_path, ["10.0.0.1"])
    assert second.ca_pem != first.ca_pem and second.cert_pem != first.cert_pem
    x509.load_pem_x509_certificate(second.cert_pem).verify_directly_issued_by(
        x509.load_pem_x509_certificate(second.ca_pem))


def test_publish_ca_creates_then_updates_the_configmap(raw: RawClient, tmp_path: Path):
    one = certificates.self_signed(tmp_path / "a", ["127.0.0.1"])
    certificates.publish_ca(raw, one.ca_pem)
    assert raw.get(CONFIG_MAPS, "antrea-ca", "kube-system")["data"] == {
        "ca.crt": one.ca_pem.decode()}
    two = certificates.self_signed(tmp_path / "b", ["127.0.0.1"])
    certificates.publish_ca(raw, two.ca_pem)
    assert raw.get(CONFIG_MAPS, "antrea-ca", "kube-system")["data"]["ca.crt"] == \
        two.ca_pem.decode()


def _secret(data: dict[str, bytes]) -> dict:
    return {"metadata": {"name": "antrea-controller-tls"}, "type": "kubernetes.io/tls",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def test_secret_mode_without_the_secret_names_it(raw: RawClient):
    with pytest.raises(CertificateError, match="kube-system/antrea-controller-tls does not "
                                               "exist"):
        certificates.from_secret(raw)


def test_secret_mode_names_the_missing_key(raw: RawClient, tmp_path: Path):
    cert = certificates.self_signed(tmp_path, ["127.0.0.1"])
    raw.create(SECRETS, _secret({"ca.crt": cert.ca_pem, "tls.crt": cert.cert_pem}),
               "kube-system")
    with pytest.raises(CertificateError, match=r"no key 'tls\.key'"):
        certificates.from_secret(raw)


def test_secret_mode_reads_a_complete_secret(raw: RawClient, tmp_path: Path):
    cert = certificates.self_signed(tmp_path, ["127.0.0.1"])
    raw.create(SECRETS, _secret({"ca.crt": cert.ca_pem, "tls.crt": cert.cert_pem,
                                 "tls.key": cert.key_pem}), "kube-system")
    assert certificates.from_secret(raw) == cert
