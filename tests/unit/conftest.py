"""Fixtures for every unit test directory: the lab API server in-process
(tests/unit/apiserver/apiserver_harness.py)
and a RawClient on it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from antrea_core.k8s.clientconfig import api_client
from antrea_core.k8s.rawclient import RawClient
from antrea_lab.apiserver.pki import ensure_pki

NODE_TOKEN = "node-n1-token"  # user system:node:n1
HARNESS = Path(__file__).parent / "apiserver" / "apiserver_harness.py"


def _harness() -> Any:
    if "apiserver_harness" in sys.modules:
        return sys.modules["apiserver_harness"]
    spec = importlib.util.spec_from_file_location("apiserver_harness", HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["apiserver_harness"] = module
    spec.loader.exec_module(module)
    return module


harness = _harness()


@pytest.fixture(scope="session")
def k8s_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("k8s-pki")
    ensure_pki(d, ["127.0.0.1"], ["localhost"])
    return d


@pytest.fixture(scope="session")
def k8s_tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("k8s-tokens") / "tokens.csv"
    f.write_text(f'{harness.ADMIN_TOKEN},admin,uid-admin,"system:masters"\n'
                 f'{NODE_TOKEN},system:node:n1,uid-n1,"system:nodes"\n')
    return f


@pytest.fixture
def start_apiserver(tmp_path: Path, k8s_pki: Path, k8s_tokens: Path
                    ) -> Iterator[Callable[..., Any]]:
    started: list[Any] = []

    def make(**kw: Any) -> Any:
        kw.setdefault("bookmark_interval", 0.5)
        srv = harness.start_server(tmp_path / f"state{len(started)}", k8s_pki, k8s_tokens,
                                   **kw)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        if srv.thread.is_alive():
            srv.stop()


@pytest.fixture
def apiserver(start_apiserver: Callable[..., Any]) -> Any:
    return start_apiserver()


@pytest.fixture
def raw(apiserver: Any) -> Iterator[RawClient]:
    client = RawClient(api_client(str(apiserver.kubeconfig)))
    yield client
    client.api.close()


@pytest.fixture
def node_kubeconfig(apiserver: Any, k8s_pki: Path, tmp_path: Path) -> Path:
    """A kubeconfig with node n1's identity (system:node:n1)."""
    from antrea_lab.apiserver.pki import write_kubeconfig

    path = tmp_path / "n1.kubeconfig"
    write_kubeconfig(path, apiserver.url, k8s_pki / "ca.crt", NODE_TOKEN, "system:node:n1")
    return path
