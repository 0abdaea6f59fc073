"""Fixtures: the lab API server running in-process on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from apiserver_harness import (
    ADMIN_TOKEN,
    RawResponse,
    RunningServer,
    client_for,
    raw_request,
    start_server,
)


@pytest.fixture(scope="session")
def pki_dir(k8s_pki: Path) -> Path:
    return k8s_pki  # the unit tier's CA and serving certificate (tests/unit/conftest.py)


@pytest.fixture(scope="session")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("tokens") / "tokens.csv"
    f.write_text(f'{ADMIN_TOKEN},admin,uid-admin,"system:masters"\n')
    return f


@pytest.fixture
def server_factory(tmp_path: Path, pki_dir: Path, token_file: Path) -> Iterator[Any]:
    started: list[RunningServer] = []

    def make(data_dir: Path | None = None, **kw: Any) -> RunningServer:
        srv = start_server(data_dir or tmp_path / "state", pki_dir, token_file, **kw)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        if srv.thread.is_alive():
            srv.stop()


@pytest.fixture
def apiserver(server_factory: Any) -> RunningServer:
    return server_factory(bookmark_interval=0.5)


@pytest.fixture
def api(apiserver: RunningServer) -> Iterator[kubernetes.client.ApiClient]:
    c = client_for(apiserver)
    yield c
    c.close()


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def raw(apiserver: RunningServer) -> Any:
    def call(method: str, path: str, body: Any = None, **kw: Any) -> RawResponse:
        return raw_request(apiserver, method, path, body, **kw)
    return call

