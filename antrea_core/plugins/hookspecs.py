"""THE plugin contract between the Antrea agent and its plugins (pluggy).

A plugin is an object (or module) whose methods carry `@hookimpl` and are named after the
hooks below; it is found through an entry point (see `antrea_core.plugins.loading`):

* group ``antrea.agent.features``: a feature plugin, entry-point name = the feature gate
  it implements (``AntreaProxy``, ``Egress``, ``IPsec`` …). It is loaded only when that
  feature is enabled in antrea-agent.conf. Third-party features pick a new name; the
  agent then accepts that name under ``featureGates`` (default: the plugin object's
  ``default_enabled`` attribute, else off).
* group ``antrea.agent.tunnels``: a tunnel driver, entry-point name = ``tunnelType``
  (``geneve``, ``vxlan``, ``gre``, ``stt``). Exactly one is loaded when the traffic mode
  needs a tunnel. Besides hooks it provides the attributes documented on `TunnelDriver`.

Every hook is optional. Start-up hooks run in the agent's main thread; pod and CNI hooks
run in CNI-server threads, one at a time under the agent's lock; node hooks run in the
node watch thread. Surviving pods get `antrea_pod_added` again when the agent restarts.
A hook must not block for long (start threads of your own in
`antrea_agent_started` and stop them in `antrea_agent_stopping`). An exception raised by
a hook during start-up stops the agent with the plugin named; later, it is logged and the
event is retried according to the caller (documented per hook).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from antrea_core.agent.openflow.flows import Flow, Group
    from antrea_core.agent.openflow.pipeline import PipelineLayout, TableSpec
    from antrea_core.plugins.context import AgentContext, CNIRequest, NodeInfo, PodInterface

PROJECT = "antrea"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class TunnelDriver(Protocol):
    """Attributes a tunnel driver (``antrea.agent.tunnels``) provides besides hooks."""

    #: OVS interface type of the tunnel port (``geneve``, ``vxlan``, ``gre``, ``stt``).
    port_type: str
    #: Default UDP/TCP destination port (0 for GRE).
    default_port: int
    #: True when only the OVS kernel datapath implements this tunnel (STT).
    needs_kernel_datapath: bool

    def overhead(self, ipv6: bool) -> int:
        """Bytes of encapsulation to subtract from the underlay MTU for the pod MTU."""
        ...

    def port_options(self, remote_ip: str | None, dst_port: int, csum: bool) -> dict[str, str]:
        """OVS `options:` of the tunnel interface (``remote_ip=flow`` when None)."""
        ...


class AgentHookSpecs:
    """Hooks the agent calls. Each docstring: when, with what, what it may return."""

    # -- configuration --------------------------------------------------------------

    @hookspec
    def antrea_validate_config(self, config: object) -> list[str] | None:
        """Check the agent configuration before anything starts.

        Called once at start-up with the validated `AgentConfig`. Return a list of error
        messages (each naming the config key) to refuse to start, or None/[] if fine.
        """

    @hookspec
    def antrea_pod_mtu_limit(self, config: object, underlay_mtu: int) -> int | None:
        """The largest pod MTU this plugin's datapath carries over `underlay_mtu`.

        Called once at start-up when ``defaultMTU`` is not set, after the tunnel
        overhead is known; the agent uses the smallest of the tunnel-derived MTU and every
        answer. Return None when the plugin puts no limit on pod packets (an encrypting
        plugin, for instance, returns what fits after its own headers).
        """

    # -- the OpenFlow pipeline ------------------------------------------------------

    @hookspec
    def antrea_pipeline_tables(self) -> list[TableSpec] | None:
        """Declare the OpenFlow tables this plugin needs.

        Called once at start-up, before the bridge is programmed. Return `TableSpec`s
        (name, `Stage`, `Pipeline`, rank). Table ids are assigned from the union of all
        enabled features' declarations; never assume a table id. Declaring a table that
        another feature also declares is fine if the specs are equal.
        """

    @hookspec
    def antrea_datapath_ready(self, context: AgentContext) -> None:
        """The node's bridge, gateway port and core tunnel port exist; no flow of any
        feature is installed yet.

        ``context.ovs_bridge`` (OVSDB), ``context.node`` and ``context.state_dir`` are
        set. Create here the host devices and OVS ports your flows will reference, so
        that `antrea_initial_flows` can name their ofports. Called once at start-up;
        raising stops the agent naming the plugin.
        """

    @hookspec
    def antrea_initial_flows(
        self, layout: PipelineLayout, context: AgentContext
    ) -> list[Flow | Group] | None:
        """Return the flows and groups this plugin installs when the bridge is ready.

        Feature plugins only (``antrea.agent.features``): the agent installs the result
        under the plugin's own feature cookie, current round; a tunnel driver or other
        plugin implementing this hook stops the agent at start-up. Called once at
        start-up, after the pipeline and the core's pod-networking initial flows are
        installed and before pods are reconciled and `antrea_agent_started`; and again
        after every reconnection to ovs-vswitchd (a restarted vswitchd has lost all
        flows), immediately followed by `antrea_replay_flows`. The result must depend
        only on the layout and the context, not on what was installed before.

        A previous agent run's flows of this feature are replaced where table, priority
        and match are equal; any others stay until the plugin removes them (e.g. with
        ``context.bridge.delete_stale_rounds(feature)`` once its own state is back).
        Raising at start-up stops the agent naming the feature; raising during a replay
        is logged and the other features are still replayed.
        """

    @hookspec
    def antrea_replay_flows(
        self, layout: PipelineLayout, context: AgentContext
    ) -> list[Flow | Group] | None:
        """Return the dynamic flows/groups this plugin installed since start-up.

        Called after ovs-vswitchd reconnects, right after `antrea_initial_flows`; both
        results are installed together under the feature's cookie, so a plugin that
        installs flows at run time (per Service, per pod …) gets them back. Replays run
        on the OpenFlow connection's event thread in this order: NetworkPolicy flows,
        then each feature plugin in feature-name order, then the pipeline's table-miss
        flows and pod/node forwarding flows last (nothing forwards before policy and
        features are back).

        A plugin that keeps its own flow state can instead register on the connection:
        ``context.bridge.conn.add_reconnect_listener(fn, order=ReplayOrder.FEATURES)``
        (`antrea_core.agent.openflow.connection`); packet-ins sent by its flows reach it
        through ``context.bridge.conn.add_packet_in_handler(
        context.bridge.feature_id(name), fn)``: each feature only gets packet-ins from
        flows carrying its own cookie.
        """

    # -- lifecycle --------------------------------------------------------------------

    @hookspec(historic=True)
    def antrea_agent_started(self, context: AgentContext) -> None:
        """The agent is up: bridge ready, initial flows installed.

        Historic: a plugin registered later still receives it. Start background work
        here.
        """

    @hookspec
    def antrea_agent_stopping(self, context: AgentContext) -> None:
        """The agent is shutting down (SIGTERM). Stop threads; do not remove flows:
        a restarting agent keeps the datapath running."""

    # -- cluster events (called from the agent's event thread, in order per object) ---

    @hookspec
    def antrea_node_added(self, node: NodeInfo, context: AgentContext) -> None:
        """A remote Node appeared or got its podCIDR/IPs (also for each existing Node at
        start-up). Called again with the new `NodeInfo` when either changes."""

    @hookspec
    def antrea_node_removed(self, node: NodeInfo, context: AgentContext) -> None:
        """A remote Node was deleted."""

    @hookspec
    def antrea_pod_added(self, pod: PodInterface, context: AgentContext) -> None:
        """A local pod's interface is attached to the bridge (after CNI ADD, and for every
        existing pod when the agent restarts)."""

    @hookspec
    def antrea_pod_removed(self, pod: PodInterface, context: AgentContext) -> None:
        """A local pod's interface was removed from the bridge (CNI DEL)."""

    # -- CNI --------------------------------------------------------------------------

    @hookspec
    def antrea_cni_add(self, request: CNIRequest, result: dict, context: AgentContext) -> None:
        """A CNI ADD succeeded in the core; `result` is the CNI 1.0 result about to be
        returned and may be amended in place (extra interfaces, routes, DNS). Raising
        fails the ADD: the core rolls back and returns a CNI error naming the plugin."""

    @hookspec
    def antrea_cni_del(self, request: CNIRequest, context: AgentContext) -> None:
        """A CNI DEL is being processed, before the core releases the interface and IPs.
        Must be idempotent: DEL may come several times, or for an unknown container."""

    # -- pod attachment before traffic ------------------------------------------------

    @hookspec
    def antrea_pod_attaching(self, pod: PodInterface, context: AgentContext) -> None:
        """A local pod's OVS port exists (ofport, IPs and MAC are final) but none of its
        forwarding flows is installed yet: the pod can neither send nor receive.

        Called during CNI ADD, under the agent's lock, before the pod's flows,
        `antrea_cni_add` and `antrea_pod_added`. Install here what must be in force from
        the pod's first packet (the core's NetworkPolicy enforcement puts the pod into
        its rules and default-deny flows here). Raising fails the ADD. If the ADD fails
        after this hook ran, `antrea_pod_removed` is called for the pod, so that hook
        must accept a pod it saw only here. Not called for surviving pods at agent
        restart: their flows, and those of the previous run, are still in place.
        """
