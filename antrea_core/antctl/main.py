"""`antctl`: the command-line client of the Antrea agent and controller.

``antctl get networkpolicy|appliedtogroup|addressgroup`` asks the controller (found
through the cluster, like kubectl); ``antctl get podinterface|ovsflows|ovstables`` asks
the agent of the node antctl runs on, over its local query socket.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

import antrea_core
from antrea_core.antctl import output, resources, views
from antrea_core.antctl.agent_client import SOCKET_ENV, AgentQueryClient, default_socket
from antrea_core.antctl.controller_client import (
    ControllerFactory,
    ControllerView,
    controller_factory,
)
from antrea_core.antctl.errors import AntctlError, NotFound, UsageError
from antrea_core.apis.controlplane import NetworkPolicy, ObjectKind

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  pretty_exceptions_show_locals=False,
                  help="Query the Antrea agent and controller.")

AgentFactory = Callable[[], AgentQueryClient]


@dataclass
class GetOptions:
    name: str | None = None
    output: str = "table"
    namespace: str = ""
    table: str = ""
    pod: str = ""


def _controller_views(resource: resources.Resource, opts: GetOptions,
                      controller: ControllerFactory) -> tuple[list[dict[str, Any]], bool]:
    view = controller()
    try:
        return _query_controller(view, resource, opts)
    finally:
        view.close()


def _query_controller(view: ControllerView, resource: resources.Resource, opts: GetOptions
                      ) -> tuple[list[dict[str, Any]], bool]:
    assert resource.kind is not None
    if opts.name is None:
        found = view.list(resource.kind)
        if opts.pod:
            found = _policies_applied_to(found, view.list(ObjectKind.APPLIED_TO_GROUP), opts)
        elif resource.kind is ObjectKind.NETWORK_POLICY and opts.namespace:
            found = [(o, s) for o, s in found if o.source.namespace == opts.namespace]
        found.sort(key=lambda item: item[0].name)
        return [views.control_plane(o, s) for o, s in found], False
    try:
        found = view.get(resource.kind, opts.name)
    except NotFound:
        if resource.kind is not ObjectKind.NETWORK_POLICY:
            raise
        found = _policies_by_source(view.list(resource.kind), opts)
    return [views.control_plane(o, s) for o, s in found], True


def _policies_applied_to(policies: list[tuple[Any, frozenset[str]]],
                         groups: list[tuple[Any, frozenset[str]]], opts: GetOptions
                         ) -> list[tuple[Any, frozenset[str]]]:
    """The policies whose applied-to groups hold pod NAMESPACE/POD (-p POD -n NS)."""
    pod = (opts.namespace or "default", opts.pod)
    holding = {g.name for g, _ in groups
               if any((m.pod.namespace, m.pod.name) == pod for m in g.members)}
    return [(p, s) for p, s in policies if holding.intersection(p.applied_to_groups)]


def _policies_by_source(found: list[tuple[Any, frozenset[str]]], opts: GetOptions
                        ) -> list[tuple[Any, frozenset[str]]]:
    """Internal policies are named by uid; users know them as NAMESPACE/NAME or NAME -n."""
    assert opts.name is not None
    namespace, _, name = opts.name.rpartition("/")
    namespace = namespace or opts.namespace or "default"
    matched = [(o, s) for o, s in found if isinstance(o, NetworkPolicy)
               and (o.source.namespace, o.source.name) == (namespace, name)]
    if not matched:
        raise NotFound(f"networkpolicy {opts.name!r} not found (neither an internal name "
                       f"nor the source policy {namespace}/{name})")
    return matched


def _agent_views(resource: resources.Resource, opts: GetOptions, agent: AgentFactory
                 ) -> list[dict[str, Any]]:
    client = agent()
    try:
        if resource.name == "podinterface":
            items = client.pod_interfaces(opts.namespace, opts.name or "")
            if opts.name and not items:
                where = f" in namespace {opts.namespace}" if opts.namespace else ""
                raise NotFound(f"podinterface {opts.name!r} not found{where}")
            return [views.pod_interface(i) for i in items]
        if resource.name == "ovsflows":
            pod_namespace = (opts.namespace or "default") if opts.pod else ""
            return [views.flow(f) for f in client.flows(opts.table, pod_namespace, opts.pod)]
        return [views.table(t) for t in client.tables()]
    finally:
        client.close()


def run_get(resource_name: str, opts: GetOptions, *, agent: AgentFactory,
            controller: ControllerFactory) -> str:
    """The text `antctl get` prints; raises AntctlError for anything it cannot show."""
    resource = resources.resolve(resource_name)
    if opts.output not in output.FORMATS:
        raise UsageError(f"unknown output format {opts.output!r}; use one of "
                         f"{', '.join(output.FORMATS)}")
    if opts.table and resource.name != "ovsflows":
        raise UsageError("-T/--table-name only applies to ovsflows")
    if opts.pod and resource.name not in ("ovsflows", "networkpolicy"):
        raise UsageError("-p/--pod only applies to ovsflows and networkpolicy")
    if opts.pod and opts.name:
        raise UsageError("give either NAME or -p/--pod, not both")
    if resource.name == "ovsflows" and opts.name:
        raise UsageError("ovsflows takes no NAME; use -T TABLE or -p POD -n NAMESPACE")
    if resource.source is resources.Source.CONTROLLER:
        found, single = _controller_views(resource, opts, controller)
    else:
        found, single = _agent_views(resource, opts, agent), bool(opts.name)
    return output.render(resource.name, found, opts.output, single=single)


@app.command()
def version() -> None:
    """Print antctl's version."""
    typer.echo(f"antctlVersion: v{antrea_core.__version__}  python: {platform.python_version()}")


@app.command(name="get", help="Get controller or agent resources:\n\n" + "\n\n".join(
    resources.describe().splitlines()))
def get(
    resource: Annotated[str, typer.Argument(help="resource type or short name")],
    name: Annotated[str | None, typer.Argument(help="one object by name")] = None,
    output_format: Annotated[str, typer.Option("-o", "--output",
                                               help="table, json or yaml")] = "table",
    namespace: Annotated[str, typer.Option("-n", "--namespace",
                                           help="pod / policy namespace")] = "",
    table_name: Annotated[str, typer.Option("-T", "--table-name",
                                            help="ovsflows: one table, by name")] = "",
    pod: Annotated[str, typer.Option(
        "-p", "--pod", help="ovsflows: the pod's flows; networkpolicy: policies applied "
        "to the pod (with -n)")] = "",
    kubeconfig: Annotated[str | None, typer.Option(
        "--kubeconfig", envvar="KUBECONFIG",
        help="kubeconfig to find the controller (default ~/.kube/config)")] = None,
    controller_address: Annotated[str | None, typer.Option(
        "--controller-address", help="HOST:PORT instead of the Service's endpoint")] = None,
    agent_socket: Annotated[str | None, typer.Option(
        "--agent-socket", envvar=SOCKET_ENV,
        help="the agent's query socket (default /var/run/antrea/agentquery.sock)")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # $KUBECONFIG may list several files; the kubernetes client takes the first.
    config_file = kubeconfig.split(":")[0] if kubeconfig else None
    opts = GetOptions(name=name, output=output_format, namespace=namespace,
                      table=table_name, pod=pod)
    try:
        text = run_get(resource, opts,
                       agent=lambda: AgentQueryClient(agent_socket or default_socket()),
                       controller=controller_factory(config_file, controller_address))
    except AntctlError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if text:
        typer.echo(text)
    elif opts.output == "table":
        typer.echo("No resources found.", err=True)


def main() -> None:
    app()
