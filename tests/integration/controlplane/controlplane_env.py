"""A real ControlPlane gRPC server over TLS on 127.0.0.1, authenticating through the lab
API server's TokenReview (run in-process), and a handler that records what it is fed."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from antrea_core.apis.controlplane import (
    AddressGroup,
    AppliedToGroup,
    EventType,
    NetworkPolicy,
    WatchEvent,
)
from antrea_core.controller.certificates import ServingCertificate, self_signed
from antrea_core.controller.server import ControlPlaneServer, TokenReviewAuthenticator
from antrea_core.controller.store import PolicyStore

HARNESS = Path(__file__).parents[2] / "unit" / "apiserver" / "apiserver_harness.py"
NODE_A, NODE_B = "node-a", "node-b"
TOKENS = {"admin": "lab-admin-token", NODE_A: "hC1-node-a-token",
          NODE_B: "hC1-node-b-token", "dev": "hC1-developer-token"}


def _load_harness() -> Any:
    spec = importlib.util.spec_from_file_location("apiserver_harness", HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("apiserver_harness", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    harness = _load_harness()
    root = tmp_path_factory.mktemp("hC1-apiserver")
    token_file = root / "tokens.csv"
    token_file.write_text(
        f'{TOKENS["admin"]},admin,uid-admin,"system:masters"\n'
        f'{TOKENS[NODE_A]},system:node:{NODE_A},uid-a,"system:nodes"\n'
        f'{TOKENS[NODE_B]},system:node:{NODE_B},uid-b,"system:nodes"\n'
        f'{TOKENS["dev"]},developer,uid-dev\n')
    (root / "data").mkdir()
    srv = harness.start_server(root / "data", root / "pki", token_file)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ServingCertificate:
    return self_signed(tmp_path_factory.mktemp("hC1-certs"), ["127.0.0.1"])


@pytest.fixture(scope="module")
def authenticator(apiserver: Any) -> TokenReviewAuthenticator:
    harness = sys.modules["apiserver_harness"]
    return TokenReviewAuthenticator(harness.client_for(apiserver))


@dataclass
class Controller:
    store: PolicyStore
    server: ControlPlaneServer
    tls: ServingCertificate
    authenticator: TokenReviewAuthenticator

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def restart_server(self, **kw: Any) -> None:
        """A new server on the same port and store (a controller pod's API restarting)."""
        self.server = ControlPlaneServer(self.store, self.authenticator,
                                         (self.tls.cert_pem, self.tls.key_pem),
                                         self.address, **kw)
        self.server.start()


@pytest.fixture
def controller(tls: ServingCertificate, authenticator: TokenReviewAuthenticator
               ) -> Iterator[Controller]:
    store = PolicyStore()
    server = ControlPlaneServer(store, authenticator, (tls.cert_pem, tls.key_pem),
                                "127.0.0.1:0", bookmark_interval=1.0)
    server.start()
    ctl = Controller(store, server, tls, authenticator)
    yield ctl
    ctl.server.stop()
    store.close()


class RecordingHandler:
    """A PolicyEventHandler holding the objects like the agent's cache would."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str], Any] = {}
        self.replace_calls = 0
        self.events: list[WatchEvent] = []

    def replace_all(self, policies: list[NetworkPolicy],
                    applied_to_groups: list[AppliedToGroup],
                    address_groups: list[AddressGroup]) -> None:
        with self.lock:
            self.replace_calls += 1
            self.objects = {(str(type(o).__name__), o.name): o
                            for o in [*policies, *applied_to_groups, *address_groups]}

    def apply(self, event: WatchEvent) -> None:
        with self.lock:
            self.events.append(event)
            key = (str(event.kind), event.name)
            if event.type == EventType.DELETED:
                del self.objects[key]
            elif event.patch is not None:
                cur = self.objects[key]
                members = (cur.members - event.patch.removed) | event.patch.added
                self.objects[key] = type(cur)(cur.name, members)
            else:
                self.objects[key] = event.obj

    def snapshot(self) -> dict[tuple[str, str], Any]:
        with self.lock:
            return dict(self.objects)


def expected_for(store: PolicyStore, node: str) -> dict[tuple[str, str], Any]:
    from antrea_core.apis.controlplane import ObjectKind

    return {(str(kind), obj.name): obj for kind in ObjectKind
            for obj, _ in store.list(kind, node=node)}
