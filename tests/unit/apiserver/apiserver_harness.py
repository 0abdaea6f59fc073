"""Run the lab API server in-process (own thread + event loop) for tests; raw HTTPS helper."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes

from antrea_lab.apiserver.pki import write_kubeconfig
from antrea_lab.apiserver.server import APIServer

ADMIN_TOKEN = "lab-admin-token"


@dataclass
class RunningServer:
    server: APIServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    host: str
    port: int
    kubeconfig: Path

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the server's loop (for direct, race-free inspection)."""
        async def wrapper() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def start_server(data_dir: Path, pki_dir: Path, token_file: Path, **kw: Any) -> RunningServer:
    ready: dict[str, Any] = {}
    started = threading.Event()
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            srv = APIServer(data_dir=data_dir, pki_dir=pki_dir, token_file=token_file, **kw)
            bound = loop.run_until_complete(srv.start([("127.0.0.1", 0)]))
            ready.update(server=srv, port=bound[0][1])
        except BaseException as e:
            ready["error"] = e
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True, name="apiserver-test")
    thread.start()
    started.wait(30)
    if "error" in ready:
        raise ready["error"]
    kubeconfig = data_dir / "kubeconfig"
    write_kubeconfig(kubeconfig, f"https://127.0.0.1:{ready['port']}", pki_dir / "ca.crt",
                     ADMIN_TOKEN, "admin")
    return RunningServer(ready["server"], loop, thread, "127.0.0.1", ready["port"], kubeconfig)


def client_for(srv: RunningServer) -> kubernetes.client.ApiClient:
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(srv.kubeconfig), client_configuration=cfg)
    return kubernetes.client.ApiClient(cfg)


@dataclass
class RawResponse:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def raw_request(srv: RunningServer, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, token: str | None = ADMIN_TOKEN,
                timeout: float = 10.0) -> RawResponse:
    """One HTTPS request with urllib3 (for protocol details the typed client hides)."""
    import json

    import urllib3

    pool = urllib3.PoolManager(ca_certs=str(srv.server.pki_dir / "ca.crt"))
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    r = pool.request(method, srv.url + path, body=data, headers=hdrs, timeout=timeout,
                     retries=False)
    return RawResponse(r.status, r.headers, r.data)
