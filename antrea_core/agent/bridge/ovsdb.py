"""The agent's one connection to ovsdb-server, with transactions that check vswitchd's result.

Everything the agent writes to OVSDB goes through `OVSDB.transact` (or `OVSDB.run`, which
wraps a function that edits rows in place). Two facts about ovsdbapp 3.0.0 shape this
module (*measured*, OVS 3.1):

* ``impl_idl.OvsdbIdl`` keeps its connection in a **class** attribute: the first instance's
  connection is silently reused by every later instance. A second ``OvsdbIdl(Connection(..))``
  — to another ovsdb-server, or a fresh connection after a restart — would talk to the
  first one. Each `OVSDB` therefore gets a subclass of its own.
* The IDL replicates what it monitors, parsing JSON in Python (the PyPI ``ovs`` wheel has
  no C parser), and vswitchd rewrites every Interface's ``statistics`` every 5 s. So we
  monitor only the columns the agent uses (`MONITORED`): with 200 pod ports a new
  connection is ready in ~0.3 s instead of 0.5-0.8 s, and the statistics churn is not
  parsed at all. Callers that need more (QoS, Mirror …) pass their own `tables`.
* A transaction succeeds as soon as ovsdb-server accepts it; an interface that vswitchd
  cannot create (missing device, bad options) is only logged (ovsdbapp even swallows its
  own check). The Open_vSwitch transaction does wait until vswitchd has applied the change
  (``cur_cfg`` reaches ``next_cfg``), so the ``ofport``/``error`` columns are current when
  ``commit`` returns: `OVSDB.check_interfaces` reads them and raises `InterfaceError`
  with OVS's own error text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovsdbapp.backend.ovs_idl import command, connection, idlutils, transaction
from ovsdbapp.schema.open_vswitch import impl_idl

log = logging.getLogger("antrea.agent.bridge")

DEFAULT_TIMEOUT = 10.0

# Table -> columns replicated by the IDL (ovsdbapp's transaction needs next_cfg/cur_cfg).
MONITORED: Mapping[str, tuple[str, ...]] = {
    "Open_vSwitch": ("bridges", "next_cfg", "cur_cfg", "other_config", "external_ids",
                     "ovs_version", "datapath_types", "iface_types"),
    "Bridge": ("name", "ports", "datapath_type", "protocols", "fail_mode", "other_config",
               "external_ids", "mcast_snooping_enable"),
    "Port": ("name", "interfaces", "external_ids", "other_config"),
    "Interface": ("name", "type", "options", "ofport", "ofport_request", "error",
                  "external_ids", "mac", "mac_in_use", "mtu", "mtu_request", "admin_state",
                  "link_state"),
}


class OVSDBError(RuntimeError):
    """An OVSDB operation failed; the message says what was attempted and why it failed."""


class InterfaceError(OVSDBError):
    """vswitchd could not create one or more interfaces.

    `failed` maps each failed interface name to OVS's error text; `ofports` holds the
    interfaces of the same operation that did get an ofport.
    """

    def __init__(self, failed: Mapping[str, str], ofports: Mapping[str, int] | None = None):
        self.failed = dict(failed)
        self.ofports = dict(ofports or {})
        shown = "; ".join(f"{name}: {err}" for name, err in sorted(self.failed.items())[:10])
        more = f" (and {len(self.failed) - 10} more)" if len(self.failed) > 10 else ""
        super().__init__(f"OVS could not create interface(s) {shown}{more}")


@dataclass(frozen=True)
class InterfaceRecord:
    """A snapshot of one OVSDB Interface row (and the Port/Bridge it hangs off)."""

    name: str
    type: str  # "" = system device (veth), "internal", "geneve", ...
    ofport: int | None  # None while unassigned or when vswitchd failed (ofport -1)
    external_ids: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    mac_in_use: str = ""
    mac: str = ""  # the configured MAC (``mac`` column), if any
    error: str = ""
    port: str = ""
    bridge: str = ""


def _scalar(value: Any) -> Any:
    """Optional columns come back from the IDL as [] or [value]."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def record_of(iface: Any, port: str = "", bridge: str = "") -> InterfaceRecord:
    """Snapshot an IDL Interface row (call with the connection lock held)."""
    ofport = _scalar(iface.ofport)
    return InterfaceRecord(
        name=iface.name,
        type=iface.type,
        ofport=ofport if isinstance(ofport, int) and ofport > 0 else None,
        external_ids=dict(iface.external_ids),
        options=dict(iface.options),
        mac_in_use=_scalar(iface.mac_in_use) or "",
        mac=_scalar(iface.mac) or "",
        error=_scalar(iface.error) or "",
        port=port,
        bridge=bridge,
    )


class _CheckedTransaction(impl_idl.OvsVsctlTransaction):
    """ovs-vsctl-like transaction that reports instead of logging.

    ovsdbapp logs and drops a failure to wait for vswitchd, and reduces failed interfaces
    to bare names; we raise the wait failure and do our own interface check afterwards.
    """

    def post_commit(self, txn: Any) -> None:
        transaction.Transaction.post_commit(self, txn)
        self.do_post_commit(txn)

    def post_commit_failed_interfaces(self, txn: Any) -> list[str]:
        return []


class _OvsdbApi(impl_idl.OvsdbIdl):
    def create_transaction(self, check_error: bool = False, log_errors: bool = True,
                           **kwargs: Any) -> _CheckedTransaction:
        return _CheckedTransaction(self, self.ovsdb_connection, check_error=check_error,
                                   log_errors=log_errors)


class FunctionCommand(command.BaseCommand):
    """A command that runs ``fn(txn)`` inside the transaction; its return is the result.

    For edits ovsdbapp has no command for (replace a map column, bulk-remove ports) without
    a round trip per row.
    """

    def __init__(self, api: Any, fn: Callable[[Any], Any], description: str) -> None:
        super().__init__(api)
        self.fn = fn
        self.description = description

    def run_idl(self, txn: Any) -> None:
        self.result = self.fn(txn)

    def __str__(self) -> str:
        return self.description

    __repr__ = __str__


def endpoint_of(target: str | Path) -> str:
    """``unix:/path`` for a socket path; OVSDB connection strings pass through."""
    text = str(target)
    if text.startswith(("unix:", "tcp:", "ssl:")):
        return text
    return f"unix:{text}"


class OVSDB:
    """The connection to one ovsdb-server's Open_vSwitch database.

    Opens the connection on construction (raising `OVSDBError` if the server does not
    answer within `timeout`); `close` ends it. The IDL replica is updated by ovsdbapp's
    connection thread; reads here take that thread's lock.
    """

    def __init__(self, target: str | Path, timeout: float = DEFAULT_TIMEOUT,
                 tables: Mapping[str, Iterable[str]] = MONITORED) -> None:
        self.endpoint = endpoint_of(target)
        self.timeout = timeout
        try:
            helper = idlutils.get_schema_helper(self.endpoint, "Open_vSwitch")
            for table, columns in tables.items():
                helper.register_columns(table, list(columns))
            idl = connection.OvsdbIdl(self.endpoint, helper)
            self._connection = connection.Connection(idl, timeout)
            # A class per connection: ovsdbapp stores the connection on the class.
            api_class = type("_OvsdbApiForConnection", (_OvsdbApi,), {"_ovsdb_connection": None})
            self.api: impl_idl.OvsdbIdl = api_class(self._connection)
        except Exception as exc:
            raise OVSDBError(f"cannot connect to OVSDB at {self.endpoint}: {exc}") from exc
        log.info("connected to OVSDB endpoint=%s", self.endpoint)

    # -- writing --------------------------------------------------------------------
    def transact(self, commands: Iterable[Any], what: str) -> list[Any]:
        """Commit `commands` in one transaction (waiting for vswitchd to apply it).

        Returns the commands' results. Raises `OVSDBError` naming `what` on any failure.
        """
        txn = self.api.create_transaction(check_error=True, log_errors=False)
        for cmd in commands:
            txn.add(cmd)
        try:
            result = txn.commit()
        except Exception as exc:
            raise OVSDBError(f"OVSDB transaction failed ({what}): {exc}") from exc
        return result or []

    def run(self, fn: Callable[[Any], Any], what: str) -> Any:
        """Run ``fn(txn)`` as the only command of a transaction; returns what fn returned.

        `fn` runs in the connection thread with IDL rows it may modify directly; it may
        run more than once (ovsdb-server's TRY_AGAIN), so it must not have side effects
        outside the transaction.
        """
        return self.transact([FunctionCommand(self.api, fn, what)], what)[0]

    # -- reading --------------------------------------------------------------------
    def rows(self, table: str) -> list[Any]:
        """The IDL rows of a table (only read them with `locked`)."""
        return list(self.api.tables[table].rows.values())

    @property
    def locked(self) -> Any:
        """Hold while reading IDL rows: the connection thread updates them under it."""
        return self._connection.lock

    def interfaces(self, bridge: str | None = None,
                   names: Collection[str] | None = None) -> list[InterfaceRecord]:
        """Snapshots of the interfaces attached to `bridge` (all bridges if None)."""
        wanted = set(names) if names is not None else None
        out: list[InterfaceRecord] = []
        with self.locked:
            for br in self.rows("Bridge"):
                if bridge is not None and br.name != bridge:
                    continue
                for port in br.ports:
                    for iface in port.interfaces:
                        if wanted is None or iface.name in wanted:
                            out.append(record_of(iface, port.name, br.name))
        return out

    def check_interfaces(self, names: Iterable[str]) -> dict[str, int]:
        """The ofport of each named interface; `InterfaceError` for those vswitchd failed.

        Call after the transaction that created or changed them returned.
        """
        wanted = list(names)
        with self.locked:
            by_name = {iface.name: iface for iface in self.rows("Interface")}
            records = {name: record_of(by_name[name]) for name in wanted if name in by_name}
        ofports: dict[str, int] = {}
        failed: dict[str, str] = {}
        for name in wanted:
            rec = records.get(name)
            if rec is None:
                failed[name] = "no Interface row (removed concurrently?)"
            elif rec.ofport is None:
                failed[name] = rec.error or (
                    "no ofport assigned (has ovs-vswitchd applied the change?)")
            else:
                ofports[name] = rec.ofport
        if failed:
            first = dict(sorted(failed.items())[:5])
            log.warning("OVS interface errors count=%d first=%s", len(failed), first)
            raise InterfaceError(failed, ofports)
        return ofports

    # -- lifetime -------------------------------------------------------------------
    def close(self) -> None:
        if not self._connection.stop(timeout=self.timeout):
            log.warning("OVSDB connection thread did not stop endpoint=%s", self.endpoint)
        log.info("closed OVSDB endpoint=%s", self.endpoint)

    def __enter__(self) -> OVSDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
