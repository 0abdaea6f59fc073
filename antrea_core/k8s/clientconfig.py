"""Build the official client's ApiClient from a kubeconfig or the in-cluster ServiceAccount."""

from __future__ import annotations

import kubernetes


class KubeConfigError(RuntimeError):
    """The credentials to reach the API server could not be loaded."""


def api_client(kubeconfig: str | None = None, server_override: str = "",
               pool_size: int = 16) -> kubernetes.client.ApiClient:
    """A client from ``kubeconfig``, else the in-cluster ServiceAccount;
    ``server_override`` (kubeAPIServerOverride) replaces the server address."""
    cfg = kubernetes.client.Configuration()
    try:
        if kubeconfig:
            kubernetes.config.load_kube_config(config_file=kubeconfig,
                                               client_configuration=cfg, persist_config=False)
        else:
            kubernetes.config.load_incluster_config(client_configuration=cfg)
    except (kubernetes.config.ConfigException, OSError) as exc:
        where = kubeconfig or "the in-cluster ServiceAccount"
        raise KubeConfigError(f"cannot load Kubernetes credentials from {where}: {exc}"
                              ) from None
    if server_override:
        cfg.host = server_override
    # Every informer holds one watch connection; leave room for other requests.
    cfg.connection_pool_maxsize = pool_size
    return kubernetes.client.ApiClient(cfg)


def bearer_token(api: kubernetes.client.ApiClient) -> str:
    """The bearer token the client sends (refreshed by the client for in-cluster tokens)."""
    header = api.configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token else (header or "").strip()
