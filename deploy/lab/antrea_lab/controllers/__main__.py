"""`python -m antrea_lab.controllers`: the lab's kube-controller-manager (+ scheduler)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading

from kubernetes.config.config_exception import ConfigException

from antrea_core.signals import wait_until_stopped

from .kubeclient import KubeClient
from .manager import ALL_CONTROLLERS, ControllerManager, Options

log = logging.getLogger("antrea.lab.controllers")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m antrea_lab.controllers",
                                description="Lab controller-manager: node IPAM, EndpointSlices, "
                                            "namespace lifecycle, scheduler.")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--cluster-cidr", action="append", default=[],
                   help="pod CIDR of the cluster; repeat (or comma-separate) for dual-stack")
    p.add_argument("--node-cidr-mask-size", type=int, default=None,
                   help="per-node mask for the IPv4 cluster CIDR (default 24)")
    p.add_argument("--node-cidr-mask-size-ipv4", type=int, default=None)
    p.add_argument("--node-cidr-mask-size-ipv6", type=int, default=64)
    p.add_argument("--controllers", default=",".join(ALL_CONTROLLERS),
                   help=f"comma-separated subset of {','.join(ALL_CONTROLLERS)}")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    cidrs = [c.strip() for arg in (args.cluster_cidr or ["10.244.0.0/16"])
             for c in arg.split(",") if c.strip()]
    try:
        for c in cidrs:
            ipaddress.ip_network(c)
    except ValueError as exc:
        p.error(f"--cluster-cidr: {exc}")
    args.cluster_cidr = cidrs
    unknown = set(args.controllers.split(",")) - set(ALL_CONTROLLERS)
    if unknown:
        p.error(f"--controllers: unknown {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The informers log failed requests with context and back off themselves; urllib3's
    # per-attempt retry warnings would only repeat that.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    mask_v4 = args.node_cidr_mask_size_ipv4 or args.node_cidr_mask_size or 24
    options = Options(cluster_cidrs=args.cluster_cidr, node_cidr_mask_v4=mask_v4,
                      node_cidr_mask_v6=args.node_cidr_mask_size_ipv6,
                      controllers=tuple(args.controllers.split(",")))
    try:
        manager = ControllerManager(KubeClient.from_kubeconfig(args.kubeconfig), options)
    except (ValueError, OSError, ConfigException) as exc:
        print(f"controllers: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal=%s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("starting cluster_cidrs=%s mask_v4=%d mask_v6=%d controllers=%s",
             options.cluster_cidrs, mask_v4, options.node_cidr_mask_v6, args.controllers)
    manager.start(stop)
    wait_until_stopped(stop)
    manager.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
