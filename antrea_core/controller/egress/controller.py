"""antrea-controller's Egress IP allocation: informers on Egresses and ExternalIPPools,
one worker thread that recomputes allocations from their caches (`allocator.Allocator`)
and writes the outcome:

* allocated IPs into the Egress spec (merge patch, guarded by the resourceVersion read,
  so an Egress edited meanwhile is recomputed rather than overwritten);
* the `IPAllocated` condition into the Egress status, merged by type so the agent's
  `IPAssigned`, `egressNode` and `egressIP` stay (`apis.egress.write_status`);
* `status.usage` of each ExternalIPPool.

Any event marks the state dirty; the worker coalesces bursts and recomputes everything
(Egresses and pools are few: hundreds, not the hundred thousands of Pods). A failed write
is retried after a pause.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from antrea_core.apis.egress import (
    CONDITION_IP_ALLOCATED,
    Egress,
    ExternalIPPool,
    parse_valid,
    set_condition,
    write_status,
)
from antrea_core.controller.egress.allocator import Allocator, Result, egress_requests
from antrea_core.k8s.informer import Informer
from antrea_core.k8s.rawclient import JSON, RawClient
from antrea_core.k8s.resources import EGRESSES, EXTERNAL_IP_POOLS
from antrea_core.k8s.resync import run_coalesced

log = logging.getLogger("antrea.controller.egress")

COALESCE_SECONDS = 0.05
RETRY_SECONDS = 2.0


class _Dirty:
    """Informer handler: any change wakes the worker."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def on_add(self, obj: JSON) -> None:
        self._event.set()

    def on_update(self, old: JSON, new: JSON) -> None:
        self._event.set()

    def on_delete(self, obj: JSON) -> None:
        self._event.set()

    def on_synced(self) -> None:
        self._event.set()


class EgressIPController:
    def __init__(self, raw: RawClient, watch_timeout: int = 300) -> None:
        self.raw = raw
        self.allocator = Allocator()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self.egresses = Informer(raw, EGRESSES, watch_timeout=watch_timeout)
        self.pools = Informer(raw, EXTERNAL_IP_POOLS, watch_timeout=watch_timeout)
        for informer in (self.egresses, self.pools):
            informer.add_handler(_Dirty(self._dirty))
        self._thread: threading.Thread | None = None
        self.syncs = 0  # observable for tests
        # Egress -> (resourceVersion patched, IPs written): not re-patched until seen.
        self._patched: dict[str, tuple[str, dict[int, str]]] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="egress-ip-allocator")
        self._thread.start()
        self.egresses.start()
        self.pools.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._dirty.set()
        self.egresses.stop(timeout)
        self.pools.stop(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def synced(self) -> bool:
        return self.egresses.synced.is_set() and self.pools.synced.is_set()

    def _run(self) -> None:
        run_coalesced(self._sync_when_synced, stop=self._stop, dirty=self._dirty,
                      what="egress IP sync", logger=log, coalesce=COALESCE_SECONDS,
                      retry=RETRY_SECONDS)

    def _sync_when_synced(self) -> None:
        if self.synced:  # a partial view would release IPs that are in use
            self.sync()

    # -- one pass -----------------------------------------------------------------------

    def sync(self) -> Result:
        pools = {p.name: p for p in parse_valid(ExternalIPPool.from_obj, self.pools.list(),
                                                    log)}
        objs = {_name(obj): obj for obj in self.egresses.list()}
        entries = [(egress, egress_requests(egress, objs[egress.name].get("spec") or {}))
                   for egress in parse_valid(Egress.from_obj, objs.values(), log)]
        result = self.allocator.compute(pools, entries)
        self.syncs += 1
        failed = False
        for name, ips in result.spec_ips.items():
            failed |= not self._write_spec(objs[name], ips)
        self._patched = {k: v for k, v in self._patched.items() if k in result.spec_ips}
        by_name = {e.name: e for e, _ in entries}
        for name, cond in result.conditions.items():
            current = by_name[name].condition(CONDITION_IP_ALLOCATED) or {}
            if (current.get("status"), current.get("reason"), current.get("message")) == \
                    (cond.status, cond.reason, cond.message):
                continue
            failed |= not self._write_condition(name, cond.status, cond.reason, cond.message)
        for egress, reqs in entries:
            if not reqs and egress.condition(CONDITION_IP_ALLOCATED) is not None:
                # No pool any more: the IP is the user's, our condition is stale.
                failed |= not self._drop_condition(egress.name)
        for name, (total, used) in result.usage.items():
            pool = pools[name]
            if (pool.status_total, pool.status_used) != (total, used):
                failed |= not self._write_usage(name, total, used)
        if failed:
            raise RuntimeError("some Egress writes failed")
        return result

    def _write_spec(self, obj: JSON, ips: dict[int, str]) -> bool:
        meta = obj.get("metadata") or {}
        name, rv = meta.get("name", ""), meta.get("resourceVersion", "")
        spec = obj.get("spec") or {}
        patch: dict[str, Any] = {}
        if -1 in ips and spec.get("egressIP") != ips[-1]:
            patch["egressIP"] = ips[-1]
        listed = [i for i in ips if i >= 0]
        if listed:
            current = list(spec.get("egressIPs") or [])
            wanted = current + [""] * (max(listed) + 1 - len(current))
            for i in listed:
                wanted[i] = ips[i]
            if wanted != current:
                patch["egressIPs"] = wanted
        if not patch or self._patched.get(name) == (rv, ips):
            return True
        try:
            self.raw.patch(EGRESSES, name, {"metadata": {"resourceVersion": rv},
                                            "spec": patch})
        except ApiException as exc:
            if exc.status in (404, 409):
                return True  # deleted or changed meanwhile: its event brings a new pass
            log.warning("cannot write egress IP egress=%s status=%s reason=%s", name,
                        exc.status, exc.reason)
            return False
        self._patched[name] = (rv, ips)
        log.info("egress IP allocated egress=%s %s", name,
                 " ".join(f"{'egressIP' if i < 0 else f'egressIPs[{i}]'}={ip}"
                          for i, ip in sorted(ips.items())))
        return True

    def _write_condition(self, name: str, status: str, reason: str, message: str) -> bool:
        if not _status_written(f"egress={name}", lambda: write_status(
                self.raw, name, lambda st: set_condition(
                    st, CONDITION_IP_ALLOCATED, status, reason, message))):
            return False
        log.info("egress condition egress=%s %s=%s reason=%s", name, CONDITION_IP_ALLOCATED,
                 status, reason)
        return True

    def _drop_condition(self, name: str) -> bool:
        def mutate(status: dict[str, Any]) -> bool:
            conditions = status.get("conditions") or []
            kept = [c for c in conditions if c.get("type") != CONDITION_IP_ALLOCATED]
            status["conditions"] = kept
            return len(kept) != len(conditions)

        return _status_written(f"egress={name}", lambda: write_status(self.raw, name, mutate))

    def _write_usage(self, name: str, total: int, used: int) -> bool:
        def mutate(status: dict[str, Any]) -> bool:
            if status.get("usage") == {"total": total, "used": used}:
                return False
            status["usage"] = {"total": total, "used": used}
            return True

        return _status_written(f"pool={name}", lambda: write_status(
            self.raw, name, mutate, resource=EXTERNAL_IP_POOLS))


def _status_written(what: str, write: Callable[[], object]) -> bool:
    """Run a status write; False (logged, to be retried) when the API refused it. An
    object deleted meanwhile counts as written."""
    try:
        write()
    except ApiException as exc:
        if exc.status == 404:
            return True
        log.warning("cannot write status %s status=%s reason=%s", what, exc.status,
                    exc.reason)
        return False
    return True


def _name(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))
