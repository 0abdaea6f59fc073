"""The agent's discovery of antrea-controller: Service endpoints, the CA ConfigMap, the
token; waiting with a clear message while they do not exist."""

from __future__ import annotations

import threading
import time

import pytest

from antrea_core.agent.controlplane import discovery
from antrea_core.agent.controlplane.discovery import DiscoveryError
from antrea_core.k8s.clientconfig import api_client
from antrea_core.k8s.rawclient import RawClient
from antrea_core.k8s.resources import CONFIG_MAPS, ENDPOINT_SLICES, ENDPOINTS, SERVICES

pytestmark = pytest.mark.unit

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def service(raw: RawClient) -> None:
    raw.create(SERVICES, {"metadata": {"name": "antrea"},
                          "spec": {"ports": [{"name": "api", "port": 443,
                                              "targetPort": 10349}]}}, "kube-system")


def slice_(raw: RawClient, name: str, ip: str, ready: bool) -> None:
    raw.create(ENDPOINT_SLICES, {
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "antrea"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}}],
        "ports": [{"name": "api", "port": 10349, "protocol": "TCP"}]}, "kube-system")


def test_waits_then_times_out_naming_what_is_missing(apiserver):
    api = api_client(str(apiserver.kubeconfig))
    start = time.monotonic()
    with pytest.raises(DiscoveryError) as err:
        discovery.discover(api, timeout=0.6, poll_interval=0.1)
    assert time.monotonic() - start >= 0.6
    assert "Service kube-system/antrea" in str(err.value)
    assert "ConfigMap kube-system/antrea-ca" in str(err.value)


def test_finds_the_ready_slice_endpoint_and_the_ca(apiserver, raw: RawClient):
    service(raw)
    slice_(raw, "antrea-a", "10.0.0.9", ready=False)
    slice_(raw, "antrea-b", "192.168.77.1", ready=True)
    raw.create(CONFIG_MAPS, {"metadata": {"name": "antrea-ca"}, "data": {"ca.crt": CA}},
               "kube-system")
    found = discovery.discover(api_client(str(apiserver.kubeconfig)), timeout=5)
    assert (found.host, found.port, found.address) == ("192.168.77.1", 10349,
                                                       "192.168.77.1:10349")
    assert found.ca_pem == CA.encode()
    assert found.server_name == "antrea.kube-system.svc"


def test_falls_back_to_endpoints_and_finds_them_once_created(apiserver, raw: RawClient):
    service(raw)
    raw.create(CONFIG_MAPS, {"metadata": {"name": "antrea-ca"}, "data": {"ca.crt": CA}},
               "kube-system")
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(discovery.discover(
        api_client(str(apiserver.kubeconfig)), timeout=10, poll_interval=0.1)))
    t.start()
    time.sleep(0.5)
    raw.create(ENDPOINTS, {"metadata": {"name": "antrea"}, "subsets": [
        {"addresses": [{"ip": "fd00::1"}], "ports": [{"name": "api", "port": 10349}]}]},
        "kube-system")
    t.join(15)
    assert result and result[0].address == "[fd00::1]:10349"  # type: ignore[attr-defined]


def test_token_is_the_agents_own_credential(apiserver):
    api = api_client(str(apiserver.kubeconfig))
    from apiserver_harness import ADMIN_TOKEN

    assert discovery.token_source(api)() == ADMIN_TOKEN
