"""The Service model built from raw Service and EndpointSlice dicts."""

from __future__ import annotations

import pytest

from antrea_proxy.model import Endpoint, ServiceCatalog, service_ports

pytestmark = pytest.mark.unit


def svc(name: str = "web", **spec: object) -> dict:
    base: dict = {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                  "ports": [{"name": "http", "port": 80, "targetPort": "http",
                             "protocol": "TCP"},
                            {"name": "dns", "port": 53, "protocol": "UDP"}]}
    base.update(spec)
    return {"metadata": {"namespace": "ns", "name": name}, "spec": base}


def eps(name: str = "web", *endpoints: tuple[str, str, bool | None]) -> dict:
    return {"metadata": {"namespace": "ns", "name": f"{name}-abc",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [{"addresses": [ip], "nodeName": node,
                           **({} if ready is None else {"conditions": {"ready": ready}})}
                          for ip, node, ready in endpoints]}


def test_named_target_ports_resolve_through_the_slice_and_unready_endpoints_are_left_out():
    ports = service_ports(svc(), [eps("web", ("10.0.0.2", "n1", True),
                                      ("10.0.1.2", "n2", None), ("10.0.1.3", "n2", False))],
                          "n1")
    by_name = {p.port_name: p for p in ports}
    assert by_name["http"].endpoints == (Endpoint("10.0.0.2", 8080, "n1"),
                                         Endpoint("10.0.1.2", 8080, "n2"))
    assert by_name["dns"].protocol == "UDP"
    assert [e.port for e in by_name["dns"].endpoints] == [5353, 5353]


def test_traffic_policies_local_keep_only_this_nodes_endpoints():
    [http, _] = service_ports(
        svc(type="NodePort", externalTrafficPolicy="Local",
            ports=[{"name": "http", "port": 80, "nodePort": 30080},
                   {"name": "dns", "port": 53, "protocol": "UDP"}]),
        [eps("web", ("10.0.0.2", "n1", True), ("10.0.1.2", "n2", True))], "n1")
    assert http.node_port == 30080
    assert [e.ip for e in http.external_endpoints] == ["10.0.0.2"]
    assert len(http.internal_endpoints) == 2
    [internal, _] = service_ports(svc(internalTrafficPolicy="Local"),
                                  [eps("web", ("10.0.0.2", "n1", True),
                                           ("10.0.1.2", "n2", True))], "n2")
    assert [e.ip for e in internal.internal_endpoints] == ["10.0.1.2"]


def test_headless_and_external_name_services_have_no_ports_but_lb_ingress_counts():
    assert service_ports(svc(clusterIP="None", clusterIPs=["None"]), [], "n1") == []
    assert service_ports(svc(type="ExternalName"), [], "n1") == []
    lb = svc(type="LoadBalancer", externalIPs=["192.168.77.50"])
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.168.77.60"}]}}
    [http, _] = service_ports(lb, [], "n1")
    assert http.external_ips == ("192.168.77.50", "192.168.77.60")
    [http, _] = service_ports(lb, [], "n1", proxy_load_balancer_ips=False)
    assert http.external_ips == ("192.168.77.50",)


def test_client_ip_affinity_timeout_defaults_to_three_hours():
    [http, _] = service_ports(svc(sessionAffinity="ClientIP"), [], "n1")
    assert http.affinity_timeout == 10800
    [http, _] = service_ports(svc(sessionAffinity="ClientIP", sessionAffinityConfig={
        "clientIP": {"timeoutSeconds": 30}}), [], "n1")
    assert http.affinity_timeout == 30


def test_catalog_skips_other_proxies_services_and_skipped_services():
    cat = ServiceCatalog(local_node="n1", skip_services=frozenset({"ns/skipped"}))
    cat.set_service(svc("web"), "ns/web")
    cat.set_service(svc("skipped"), "ns/skipped")
    other = svc("other")
    other["metadata"]["labels"] = {"service.kubernetes.io/service-proxy-name": "foo"}
    cat.set_service(other, "ns/other")
    cat.set_slice(eps("web", ("10.0.0.2", "n1", True)), "ns/web-abc")
    assert {p.name for p in cat.service_ports()} == {"web"}
    cat.set_service(None, "ns/web")
    assert cat.service_ports() == []


def test_load_balancer_source_ranges_apply_to_the_ingress_ips_only():
    service = svc(type="LoadBalancer", externalIPs=["192.0.2.9"],
                  loadBalancerSourceRanges=["203.0.113.7/24", "2001:db8::/64", " 10.1.0.0/16"])
    service["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
    [http, _] = service_ports(service, [], "n1")
    assert http.external_ips == ("192.0.2.9", "192.0.2.10")
    assert http.load_balancer_ips == ("192.0.2.10",)
    # Normalized; IPv6 ranges are a gap (IPv6 Services are not programmed).
    assert http.source_ranges == ("203.0.113.0/24", "10.1.0.0/16")
    # Without ingress IPs (or with proxyLoadBalancerIPs off) the ranges restrict nothing.
    del service["status"]
    assert service_ports(service, [], "n1")[0].source_ranges == ()


def test_the_health_check_node_port_is_a_local_load_balancers():
    service = svc(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=31500)
    assert {p.health_check_node_port for p in service_ports(service, [], "n1")} == {31500}
    service["spec"]["type"] = "NodePort"
    assert {p.health_check_node_port for p in service_ports(service, [], "n1")} == {None}


def _hinted(*endpoints: tuple[str, str, list[str] | None]) -> dict:
    obj = eps("web")
    obj["endpoints"] = [{"addresses": [ip], "nodeName": node,
                         **({"hints": {"forZones": [{"name": z} for z in zones]}}
                            if zones is not None else {})}
                        for ip, node, zones in endpoints]
    return obj


def test_topology_hints_narrow_cluster_traffic_to_the_nodes_zone():
    hinted = _hinted(("10.0.0.2", "n1", ["a"]), ("10.0.1.2", "n2", ["b"]),
                     ("10.0.2.2", "n3", ["a", "c"]))
    [http, _] = service_ports(svc(), [hinted], "n1", local_zone="a")
    assert [e.ip for e in http.internal_endpoints] == ["10.0.0.2", "10.0.2.2"]
    assert [e.ip for e in http.external_endpoints] == ["10.0.0.2", "10.0.2.2"]
    assert len(http.endpoints) == 3  # all still known (e.g. for conntrack flushing)
    # Traffic policy Local wins over hints.
    [local, _] = service_ports(svc(internalTrafficPolicy="Local"), [hinted], "n2",
                               local_zone="a")
    assert [e.ip for e in local.internal_endpoints] == ["10.0.1.2"]


@pytest.mark.parametrize("zone,endpoints", [
    ("", [("10.0.0.2", "n1", ["a"]), ("10.0.1.2", "n2", ["b"])]),      # node has no zone
    ("a", [("10.0.0.2", "n1", ["a"]), ("10.0.1.2", "n2", None)]),      # one without hints
    ("z", [("10.0.0.2", "n1", ["a"]), ("10.0.1.2", "n2", ["b"])]),     # none for this zone
])
def test_topology_hints_are_ignored_unless_complete_and_usable(zone, endpoints):
    [http, _] = service_ports(svc(), [_hinted(*endpoints)], "n1", local_zone=zone)
    assert len(http.internal_endpoints) == 2


def test_the_catalog_takes_its_zone_from_its_node():
    catalog = ServiceCatalog(local_node="n1")
    catalog.set_node({"metadata": {"name": "n1", "labels": {
        "topology.kubernetes.io/zone": "a"}}}, "n1")
    catalog.set_service(svc(), "ns/web")
    catalog.set_slice(_hinted(("10.0.0.2", "n1", ["a"]), ("10.0.1.2", "n2", ["b"])),
                      "ns/web-abc")
    [http, _] = catalog.service_ports()
    assert [e.ip for e in http.internal_endpoints] == ["10.0.0.2"]
