"""Keeps this node's charon running and its connections equal to the peers the agent knows.

The agent's Node events only change the wanted set (`set_peer`/`remove_peer`) and return;
one thread makes charon match it: it starts charon again if it died, loads the PSK, and
loads or unloads one IKEv2 connection per peer. A failure (charon restarting, a VICI
error) is retried after a second; while it lasts the fail-closed rules and flows drop
the tunnel traffic of the peers without an SA: nothing leaves in plaintext.

charon outlives an agent restart, like the datapath does: the next agent adopts it
(`Charon.adopt`), reloads the same connections (charon keeps the SAs of a connection
loaded again unchanged: measured, the SPIs stay) and unloads those of Nodes deleted
meanwhile, so tunnel traffic does not stop while the agent restarts.
"""

from __future__ import annotations

import logging
import threading

from antrea_ipsec.charon import Charon, CharonError
from antrea_ipsec.sa import IPsecError, Peer, SAManager

log = logging.getLogger("antrea.agent.ipsec.keeper")

RETRY_SECONDS = 1.0
CHECK_SECONDS = 2.0  # how often a silent charon is checked for life
CONN_PREFIX = "antrea-"  # sa.conn_name: connections this keeper owns


class SAKeeper:
    def __init__(self, charon: Charon, sas: SAManager, psk: str) -> None:
        self.charon = charon
        self.sas = sas
        self.psk = psk
        self.charon_starts = 0
        self.adopted = False
        self._wanted: dict[str, Peer] = {}  # by connection name
        self._loaded: dict[str, Peer | None] = {}  # None: found in an adopted charon
        self._psk_loaded = False
        self._lock = threading.Lock()
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="antrea-ipsec", daemon=True)

    # -- what the agent wants -------------------------------------------------------------
    def set_peer(self, peer: Peer) -> None:
        with self._lock:
            self._wanted[peer.conn_name] = peer
        self._kick.set()

    def remove_peer(self, peer: Peer) -> None:
        with self._lock:
            self._wanted.pop(peer.conn_name, None)
        self._kick.set()

    def wanted(self) -> dict[str, Peer]:
        with self._lock:
            return dict(self._wanted)

    # -- lifecycle ------------------------------------------------------------------------
    def start_charon(self) -> None:
        """Adopt the charon an earlier agent left running, else start one (a failure is
        the agent's to report at start-up)."""
        if self.charon.adopt() is not None:
            self.adopted = True
            self._loaded = {c: None for c in self.sas.connections()
                            if c.startswith(CONN_PREFIX)}
            self._psk_loaded = False
            return
        self._ensure_charon()

    def start(self) -> None:
        """Start syncing, once the agent has told us every existing peer: before that,
        an adopted charon's connections would look stale."""
        self._thread.start()

    def stop(self, stop_charon: bool = False) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread.is_alive():
            self._thread.join(15)
        if stop_charon:
            self.charon.stop()

    def _ensure_charon(self) -> None:
        if self.charon.running():
            return
        if self.charon_starts or self.adopted:
            log.warning("charon is not running; starting it again")
        self.charon.start(replace_stale=True)
        self.charon_starts += 1
        self._loaded.clear()
        self._psk_loaded = False

    def sync(self) -> None:
        """One pass: charon up, PSK loaded, connections = wanted peers."""
        self._ensure_charon()
        if not self._psk_loaded:
            self.sas.load_psk(self.psk)
            self._psk_loaded = True
        wanted = self.wanted()
        for name in sorted(set(self._loaded) - set(wanted)):
            self.sas.unload_conn(name)
            del self._loaded[name]
        for name, peer in sorted(wanted.items()):
            if self._loaded.get(name) != peer:
                self.sas.load_peer(peer)  # starts the SA (start_action=start)
                self._loaded[name] = peer

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
                wait = CHECK_SECONDS
            except (CharonError, IPsecError, OSError) as exc:
                log.warning("IPsec sync failed (retrying in %.0fs): %s", RETRY_SECONDS, exc)
                wait = RETRY_SECONDS
            self._kick.wait(wait)
            self._kick.clear()
