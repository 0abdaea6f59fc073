"""The controller-manager: shared informers, the controllers on top, start and stop."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from .endpointslices import MANAGED_BY, MANAGED_BY_LABEL, EndpointSliceController
from .informer import Controller, Informer
from .kubeclient import (
    CONFIG_MAPS,
    ENDPOINT_SLICES,
    NAMESPACES,
    NODES,
    PODS,
    SERVICE_ACCOUNTS,
    SERVICES,
    KubeClient,
)
from .namespaces import DEFAULT_SA, ROOT_CA_NAME, NamespaceController
from .nodeipam import NodeCidrs, NodeIpamController
from .scheduler import SchedulerController

log = logging.getLogger("antrea.lab.controllers.manager")

ALL_CONTROLLERS = ("nodeipam", "endpointslices", "namespaces", "scheduler")


@dataclass
class Options:
    cluster_cidrs: list[str] = field(default_factory=lambda: ["10.244.0.0/16"])
    node_cidr_mask_v4: int = 24
    node_cidr_mask_v6: int = 64
    controllers: tuple[str, ...] = ALL_CONTROLLERS
    sync_timeout: float = 60.0


class ControllerManager:
    def __init__(self, client: KubeClient, options: Options) -> None:
        self.client = client
        self.options = options
        self._informers: dict[str, Informer] = {}
        self.controllers: list[Controller] = []
        self._build()

    def _informer(self, name: str, label_selector: str | None = None,
                  field_selector: str | None = None) -> Informer:
        if name not in self._informers:
            res = {"nodes": NODES, "pods": PODS, "services": SERVICES,
                   "endpointslices": ENDPOINT_SLICES, "namespaces": NAMESPACES,
                   "serviceaccounts": SERVICE_ACCOUNTS, "configmaps": CONFIG_MAPS}[name]
            self._informers[name] = Informer(self.client, res, label_selector=label_selector,
                                             field_selector=field_selector)
        return self._informers[name]

    def _build(self) -> None:
        opts = self.options
        enabled = set(opts.controllers)
        if "nodeipam" in enabled:
            cidrs = NodeCidrs(opts.cluster_cidrs, opts.node_cidr_mask_v4, opts.node_cidr_mask_v6)
            self.controllers.append(NodeIpamController(self.client, self._informer("nodes"),
                                                       cidrs))
        if "endpointslices" in enabled:
            self.controllers.append(EndpointSliceController(
                self.client, self._informer("services"), self._informer("pods"),
                self._informer("nodes"),
                self._informer("endpointslices",
                               label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}")))
        if "namespaces" in enabled:
            self.controllers.append(NamespaceController(
                self.client, self._informer("namespaces"),
                self._informer("serviceaccounts", field_selector=f"metadata.name={DEFAULT_SA}"),
                self._informer("configmaps", field_selector=f"metadata.name={ROOT_CA_NAME}"),
                self.client.ca_pem()))
        if "scheduler" in enabled:
            self.controllers.append(SchedulerController(self.client, self._informer("pods"),
                                                        self._informer("nodes")))

    def start(self, stop: threading.Event) -> bool:
        """Start informers, wait for their first list, then start workers.
        Returns False if stop was set before everything synced."""
        for inf in self._informers.values():
            inf.start()
        for name, inf in self._informers.items():
            while not inf.wait_synced(0.5):
                if stop.is_set():
                    return False
            log.info("informer synced resource=%s items=%d", name, len(inf.list_keys()))
        for ctrl in self.controllers:
            ctrl.on_synced()
            # Objects seen during the initial list were queued by the handlers already.
            ctrl.start()
            log.info("controller started name=%s workers=%d", ctrl.name, ctrl.workers)
        return True

    def stop(self) -> None:
        for ctrl in self.controllers:
            ctrl.stop()
        for inf in self._informers.values():
            inf.stop()
        self.client.close()
        log.info("stopped")
