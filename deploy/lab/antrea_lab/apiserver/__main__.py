"""`python -m antrea_lab.apiserver`: the lab's Kubernetes-compatible API server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from .server import APIServer

log = logging.getLogger("antrea.lab.apiserver")


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _netns_listen(value: str) -> tuple[str, str, int]:
    netns, sep, addr = value.partition("=")
    if not sep or not netns:
        raise argparse.ArgumentTypeError(f"expected NETNS=IP:PORT, got {value!r}")
    host, port = _host_port(addr)
    return netns, host, port


def _port_range(value: str) -> tuple[int, int]:
    lo, sep, hi = value.partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit() or int(lo) > int(hi):
        raise argparse.ArgumentTypeError(f"expected LO-HI, got {value!r}")
    return int(lo), int(hi)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m antrea_lab.apiserver",
                                description="Kubernetes-compatible API server for the lab "
                                            "(a test server, not for production).")
    p.add_argument("--data-dir", type=Path, required=True, help="state directory")
    p.add_argument("--pki-dir", type=Path, required=True,
                   help="lab PKI (created if missing): ca.crt, apiserver.crt/.key, sa.key/.pub")
    p.add_argument("--token-file", type=Path, help="static tokens: token,user,uid,\"groups\"")
    p.add_argument("--listen", type=_host_port, action="append", default=[],
                   metavar="HOST:PORT")
    p.add_argument("--listen-netns", type=_netns_listen, action="append", default=[],
                   metavar="NETNS=IP:PORT", help="also listen inside /run/netns/NETNS")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/16")
    p.add_argument("--service-node-port-range", type=_port_range, default=(30000, 32767))
    p.add_argument("--watch-history", type=int, default=10_000,
                   help="watch events kept per resource")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if not args.listen:
        args.listen = [("127.0.0.1", 6443)]
    return args


async def run(args: argparse.Namespace) -> None:
    extra_sans = [h for h, _ in args.listen] + [h for _, h, _ in args.listen_netns]
    server = APIServer(data_dir=args.data_dir, pki_dir=args.pki_dir, token_file=args.token_file,
                       service_cidr=args.service_cluster_ip_range,
                       node_port_range=args.service_node_port_range,
                       history_window=args.watch_history,
                       extra_ip_sans=[h for h in extra_sans if h not in ("0.0.0.0", "::")])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start(args.listen, args.listen_netns)
    await stop.wait()
    log.info("shutting down")
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
