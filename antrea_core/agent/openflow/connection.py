"""An OpenFlow 1.5 connection to one bridge's management socket (os-ken as the codec).

ovs-vswitchd listens on ``unix:$OVS_RUNDIR/<bridge>.mgmt`` for every bridge; connecting
there needs no controller row, no TCP port and flushes nothing (DESIGN §7). The
connection speaks only OpenFlow 1.5, which the bridge's ``protocols`` column must allow
(an empty column allows 1.0 to 1.5 on OVS 3.1; a list without OpenFlow15 is refused with
`VersionMismatch`).

Concurrency model: one *reader thread* owns the socket's input side: it (re)connects,
does the handshake, frames messages by their header length, answers echo requests and
resolves waiters by xid. Sending is thread-safe (one lock around ``sendall``); callers
block on futures with timeouts. Callbacks run on one *event thread*, never on the
reader, so a callback may itself send and wait.

Features hook in through two seams instead of replacing each other's callbacks:

* reconnect listeners (`add_reconnect_listener`): after ovs-vswitchd restarts (all flows
  lost) they run in `ReplayOrder`: policy before feature flows before the pipeline and
  pod forwarding flows, so no pod is reachable while its isolation is still missing. A
  failing listener is logged and the others still run, except after a *required* one
  (policy): then nothing later runs and the replay is retried, failing closed;
* packet-in handlers (`add_packet_in_handler`): keyed by the feature id in the top byte
  of the cookie of the flow that sent the packet (bridge_client's cookie layout), so a
  feature only sees its own packet-ins. `on_packet_in` gets those no handler claimed.

Errors: an OFPT_ERROR answering one of our requests raises `OFPErrorReply` in the
waiting caller, naming the error type/code and what the request was.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as ofpp
from os_ken.ofproto.ofproto_parser import MsgBase

from antrea_core.agent.openflow import oskenfix

oskenfix.apply()

log = logging.getLogger("antrea.agent.openflow")

HEADER = struct.Struct("!BBHI")  # version, type, length, xid
BUNDLE_ADD_HEAD = struct.Struct("!BBHIIHH")  # header + bundle_id, pad, flags
XID_OFFSET = 4
MAX_XID = 0xFFFFFFFF
PACKET_IN_FORMAT_NXT_PACKET_IN2 = 2
# Every OF1.5 packet-in reason (TABLE_MISS … PACKET_OUT); OVS rejects bits above 0x3f.
PACKET_IN_REASONS = 0x3F
SEND_CHUNK = 1 << 20  # bytes per sendall, so echo replies are not starved by a big batch
REPLAY_RETRY_SECONDS = 2.0  # after a required reconnect listener failed
# bridge_client's cookie layout: the owning feature's id is the cookie's top byte.
COOKIE_FEATURE_SHIFT = 56

Message = MsgBase | bytes | bytearray


class Codec:
    """The stand-in for os-ken's Datapath: all its message classes need are these two."""

    ofproto = ofp
    ofproto_parser = ofpp


CODEC = Codec()


class OpenFlowError(Exception):
    """Base of the errors raised by the OpenFlow connection and bridge client."""


class ConnectionLost(OpenFlowError):
    """The bridge is not connected, or the connection broke before the answer came."""


class RequestTimeout(OpenFlowError):
    """No answer within the timeout."""


class VersionMismatch(OpenFlowError):
    """The bridge does not allow OpenFlow 1.5 on its management socket."""


_ERROR_CODE_PREFIX = {
    ofp.OFPET_HELLO_FAILED: "OFPHFC_",
    ofp.OFPET_BAD_REQUEST: "OFPBRC_",
    ofp.OFPET_BAD_ACTION: "OFPBAC_",
    ofp.OFPET_BAD_INSTRUCTION: "OFPBIC_",
    ofp.OFPET_BAD_MATCH: "OFPBMC_",
    ofp.OFPET_FLOW_MOD_FAILED: "OFPFMFC_",
    ofp.OFPET_GROUP_MOD_FAILED: "OFPGMFC_",
    ofp.OFPET_PORT_MOD_FAILED: "OFPPMFC_",
    ofp.OFPET_TABLE_MOD_FAILED: "OFPTMFC_",
    ofp.OFPET_QUEUE_OP_FAILED: "OFPQOFC_",
    ofp.OFPET_SWITCH_CONFIG_FAILED: "OFPSCFC_",
    ofp.OFPET_ROLE_REQUEST_FAILED: "OFPRRFC_",
    ofp.OFPET_METER_MOD_FAILED: "OFPMMFC_",
    ofp.OFPET_TABLE_FEATURES_FAILED: "OFPTFFC_",
    ofp.OFPET_BAD_PROPERTY: "OFPBPC_",
    ofp.OFPET_ASYNC_CONFIG_FAILED: "OFPACFC_",
    ofp.OFPET_FLOW_MONITOR_FAILED: "OFPMOFC_",
    ofp.OFPET_BUNDLE_FAILED: "OFPBFC_",
}


def error_names(type_: int, code: int) -> tuple[str, str]:
    """Symbolic names of an OpenFlow error type and code (numbers if unknown)."""
    type_name = next((k for k, v in vars(ofp).items()
                      if k.startswith("OFPET_") and v == type_), f"type {type_}")
    prefix = _ERROR_CODE_PREFIX.get(type_)
    code_name = f"code {code}"
    if prefix is not None:
        code_name = next((k for k, v in vars(ofp).items()
                          if k.startswith(prefix) and v == code), code_name)
    return type_name, code_name


class OFPErrorReply(OpenFlowError):
    """ovs-vswitchd answered a request with OFPT_ERROR."""

    def __init__(self, error: Any, what: str) -> None:
        self.type: int = error.type
        self.code: int = error.code
        self.type_name, self.code_name = error_names(error.type, error.code)
        self.what = what
        self.data: bytes = bytes(error.data or b"")
        detail = ""
        if error.type == ofp.OFPET_EXPERIMENTER:
            detail = f" (experimenter {error.experimenter:#x} exp_type {error.exp_type})"
        super().__init__(f"{self.type_name}/{self.code_name}{detail} for {what}")


class BundleError(OpenFlowError):
    """A bundle was discarded: nothing of it was committed."""

    def __init__(self, errors: list[OFPErrorReply]) -> None:
        self.errors = errors
        first = errors[0] if errors else None
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"bundle discarded: {first}{more}")


class ReplayOrder(IntEnum):
    """When a reconnect listener runs relative to the others (lower first; equal values
    in registration order). Gaps leave room for listeners in between."""

    POLICY = 100  # NetworkPolicy: isolation back before anything forwards again
    FEATURES = 200  # feature plugins' flows (Services, Egress …)
    FORWARDING = 300  # the pipeline's table-miss flows, pod and node forwarding flows


ReconnectListener = Callable[["OFConnection"], None]
PacketInHandler = Callable[["PacketIn"], object]


@dataclass(frozen=True, order=True)
class _Listener:
    order: int
    seq: int
    name: str = field(compare=False)
    fn: ReconnectListener = field(compare=False)
    required: bool = field(default=False, compare=False)


def cookie_feature_id(cookie: int | None) -> int:
    """The feature id a flow cookie carries (0: none of ours)."""
    return (cookie or 0) >> COOKIE_FEATURE_SHIFT


@dataclass(frozen=True)
class PacketIn:
    """A packet sent to the controller (NXT_PACKET_IN2)."""

    data: bytes
    table_id: int | None
    cookie: int | None
    reason: int | None
    userdata: bytes | None
    fields: dict[str, Any]  # pipeline metadata at the time: in_port, regs, ct_state …
    total_len: int | None = None


class _BundleAdd(bytearray):
    """Bundle-add bytes: the inner message's xid must follow the outer one."""


def serialize(msg: Message, xid: int = 0) -> bytearray:
    """Wire bytes of a message with `xid` written into its header.

    A bytearray is patched in place (templates and pre-built messages pass as bytes).
    """
    if isinstance(msg, bytearray):
        buf = msg
    elif isinstance(msg, bytes):
        buf = bytearray(msg)
    else:
        msg.datapath = CODEC
        msg.xid = None
        msg.serialize()
        buf = msg.buf
    struct.pack_into("!I", buf, XID_OFFSET, xid)
    if isinstance(msg, _BundleAdd):
        struct.pack_into("!I", buf, BUNDLE_ADD_HEAD.size + XID_OFFSET, xid)
    return buf


def _parse_oxm_fields(raw: bytes | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    offset = 0
    while raw and offset < len(raw):
        n, value, mask, length = ofp.oxm_parse(raw, offset)
        key, user_value = ofp.oxm_to_user(n, value, mask)
        fields[key] = user_value
        offset += length
    return oskenfix.split_packet_registers(fields)


@dataclass
class _Waiter:
    future: Future[Any]
    what: str
    multipart: bool = False
    parts: list[Any] = field(default_factory=list)


@dataclass
class _Batch:
    """Fire-and-forget messages with a contiguous xid range; errors are collected."""

    first: int
    count: int
    describe: Callable[[int], str]
    errors: list[tuple[int, OFPErrorReply]] = field(default_factory=list)
    bufs: list[bytearray] = field(default_factory=list)

    def covers(self, xid: int) -> bool:
        return 0 <= (xid - self.first) % (MAX_XID + 1) < self.count

    def sorted_errors(self) -> list[OFPErrorReply]:
        return [error for _, error in sorted(self.errors, key=lambda e: e[0])]


class OFConnection:
    """An OpenFlow 1.5 channel to ``mgmt_path`` with automatic reconnection."""

    def __init__(
        self,
        mgmt_path: str,
        *,
        on_reconnect: Callable[[OFConnection], None] | None = None,
        on_packet_in: Callable[[PacketIn], None] | None = None,
        timeout: float = 10.0,
        retry_interval: float = 0.2,
    ) -> None:
        self.mgmt_path = mgmt_path
        # Packet-ins whose feature has no handler (tests, tools); features register
        # through add_packet_in_handler.
        self.on_packet_in = on_packet_in
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.generation = 0  # counts established connections
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()  # _sock, _waiters, _batches, xids
        self._connected = threading.Condition(self._state_lock)
        self._waiters: dict[int, _Waiter] = {}
        self._batches: list[_Batch] = []
        self._next_xid = 1
        self._bundle_ids = itertools.count(1)
        self._closed = threading.Event()
        self._events: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._event_thread: threading.Thread | None = None
        self._last_error: BaseException | None = None
        self._listeners_lock = threading.Lock()
        self._listeners: list[_Listener] = []
        self._listener_seq = itertools.count()
        self._pin_handlers: dict[int, list[PacketInHandler]] = {}
        self.replay_retry_seconds = REPLAY_RETRY_SECONDS
        if on_reconnect is not None:
            self.add_reconnect_listener(on_reconnect, order=ReplayOrder.FORWARDING,
                                        name="on_reconnect")

    # -- feature seams ----------------------------------------------------------------

    def add_reconnect_listener(self, fn: ReconnectListener, *,
                               order: int = ReplayOrder.FEATURES, name: str = "",
                               required: bool = False) -> Callable[[], None]:
        """Call `fn(conn)` on the event thread after each reconnection (not the first
        connection), in `order` among the listeners. If a `required` listener raises,
        the listeners after it are skipped (what they install must not work without
        it) and the whole replay is retried. Returns a function removing it."""
        listener = _Listener(int(order), next(self._listener_seq),
                             name or getattr(fn, "__qualname__", repr(fn)), fn, required)
        with self._listeners_lock:
            self._listeners.append(listener)
            self._listeners.sort()

        def remove() -> None:
            with self._listeners_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return remove

    def add_packet_in_handler(self, feature_id: int, fn: PacketInHandler
                              ) -> Callable[[], None]:
        """Call `fn(packet_in)` on the event thread for each packet-in sent by a flow
        whose cookie carries `feature_id`. Returns a function removing it."""
        if not 0 < feature_id <= 0xFF:
            raise ValueError(f"feature id {feature_id} is not 1..255")
        with self._listeners_lock:
            self._pin_handlers.setdefault(feature_id, []).append(fn)

        def remove() -> None:
            with self._listeners_lock:
                handlers = self._pin_handlers.get(feature_id, [])
                if fn in handlers:
                    handlers.remove(fn)
        return remove

    def run_reconnect_listeners(self, generation: int | None = None) -> None:
        """Run the reconnect listeners in order, as a reconnection does (for connection
        `generation`; None: the current one). Stops early if a newer connection exists."""
        if generation is None:
            generation = self.generation
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            if generation != self.generation:
                # Lost again meanwhile: the newer connection's replay is queued behind us
                # and runs every listener from the start.
                log.warning("replay superseded path=%s generation=%d", self.mgmt_path,
                            generation)
                return
            try:
                listener.fn(self)
            except Exception:
                log.exception("reconnect listener failed path=%s listener=%s",
                              self.mgmt_path, listener.name)
                if listener.required:
                    log.error("replay stopped before the listeners after %s; retrying in "
                              "%.1fs path=%s", listener.name, self.replay_retry_seconds,
                              self.mgmt_path)
                    self._retry_replay(generation)
                    return

    def _retry_replay(self, generation: int) -> None:
        def requeue() -> None:
            if not self._closed.is_set() and generation == self.generation:
                self._events.put(lambda: self.run_reconnect_listeners(generation))

        timer = threading.Timer(self.replay_retry_seconds, requeue)
        timer.daemon = True
        timer.start()

    def _deliver(self, packet: PacketIn) -> None:
        feature_id = cookie_feature_id(packet.cookie)
        with self._listeners_lock:
            handlers = list(self._pin_handlers.get(feature_id, ()))
        if not handlers:
            fallback = self.on_packet_in
            if fallback is None:
                log.debug("packet-in without a handler path=%s feature=%d", self.mgmt_path,
                          feature_id)
                return
            handlers = [fallback]
        for handler in handlers:
            try:
                handler(packet)
            except Exception:
                log.exception("packet-in handler failed path=%s feature=%d", self.mgmt_path,
                              feature_id)

    # -- lifecycle --------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        """Start the threads and wait until the first connection is established.

        Reconnect listeners are not called for this first connection (the caller
        installs its flows after start returns), only for later ones.
        """
        if self._reader is not None:
            raise OpenFlowError("connection already started")
        self._event_thread = threading.Thread(
            target=self._run_events, name=f"ofevents:{self.mgmt_path}", daemon=True)
        self._event_thread.start()
        self._reader = threading.Thread(
            target=self._run_reader, name=f"ofreader:{self.mgmt_path}", daemon=True)
        self._reader.start()
        try:
            self.wait_connected(self.timeout if timeout is None else timeout)
        except ConnectionLost:
            self.close()
            if isinstance(self._last_error, VersionMismatch):
                raise self._last_error from None
            raise

    def close(self) -> None:
        """Stop the threads and close the socket (flows stay in the bridge)."""
        self._closed.set()
        with self._state_lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
        self._events.put(None)
        if self._event_thread is not None and self._event_thread is not threading.current_thread():
            self._event_thread.join(timeout=5)

    @property
    def connected(self) -> bool:
        with self._state_lock:
            return self._sock is not None

    def wait_connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._connected:
            while self._sock is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed.is_set():
                    reason = f": {self._last_error}" if self._last_error else ""
                    raise ConnectionLost(f"not connected to {self.mgmt_path}{reason}")
                self._connected.wait(left)

    # -- requests ---------------------------------------------------------------------

    def send(self, msg: Message) -> int:
        """Send without waiting; returns the xid. Errors for it are only logged."""
        xid = self._alloc_xids(1)
        self._send_bytes([serialize(msg, xid)])
        return xid

    def request(self, msg: Message, timeout: float | None = None, what: str = "") -> Any:
        """Send a request and return its reply message (all parts for multipart)."""
        multipart = not isinstance(msg, bytes | bytearray) and isinstance(
            msg, ofpp.OFPMultipartRequest)
        return self._request(msg, timeout, what or type(msg).__name__, multipart)

    def multipart(self, msg: Message, timeout: float | None = None) -> list[Any]:
        """Send a multipart request; returns every reply part's message, in order."""
        return self._request(msg, timeout, type(msg).__name__, True)

    def barrier(self, timeout: float | None = None) -> None:
        """Wait until vswitchd has processed everything sent before."""
        self._request(ofpp.OFPBarrierRequest(CODEC), timeout, "barrier", False)

    def transaction(
        self,
        msgs: Sequence[Message],
        describe: Callable[[int], str] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Send messages then a barrier; raise the first error any of them got.

        Not atomic: messages without errors took effect. `describe(i)` names message i
        in the error (default: its class).
        """
        timeout = self.timeout if timeout is None else timeout
        with self._tracked(msgs, describe, timeout) as batch:
            self._send_bytes(batch.bufs)
            # vswitchd answers in order: once the barrier is back, every error is in.
            self.barrier(timeout)
        if batch.errors:
            raise batch.sorted_errors()[0]

    def bundle(
        self,
        msgs: Sequence[Message],
        describe: Callable[[int], str] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Apply messages atomically through an OpenFlow bundle (all or nothing).

        Errors come at two moments: a malformed message is refused when added (OVS then
        drops it and would commit the rest, so a barrier follows the adds and any error
        discards the bundle); a message that only fails against the tables (a missing
        group, say) fails the commit, which OVS rolls back, reporting the message's own
        error before the commit's. Either way `BundleError` lists the messages' errors.
        """
        timeout = self.timeout if timeout is None else timeout
        bundle_id = next(self._bundle_ids) & MAX_XID
        flags = ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED
        self.request(self._bundle_ctrl(bundle_id, ofp.OFPBCT_OPEN_REQUEST, flags), timeout,
                     what=f"bundle {bundle_id} open")
        adds = [_bundle_add(bundle_id, flags, msg) for msg in msgs]
        # The batch stays tracked until the commit is answered, so errors reported for
        # individual messages at commit time still name them.
        with self._tracked(adds, describe, timeout) as batch:
            try:
                self._send_bytes(batch.bufs)
                self.barrier(timeout)
            except OpenFlowError:
                self._discard(bundle_id, flags, timeout)
                raise
            if batch.errors:
                self._discard(bundle_id, flags, timeout)
                raise BundleError(batch.sorted_errors())
            try:
                self.request(self._bundle_ctrl(bundle_id, ofp.OFPBCT_COMMIT_REQUEST, flags),
                             timeout, what=f"bundle {bundle_id} commit")
            except OFPErrorReply as exc:
                raise BundleError([*batch.sorted_errors(), exc]) from exc

    # -- internals: sending -----------------------------------------------------------

    @staticmethod
    def _bundle_ctrl(bundle_id: int, type_: int, flags: int) -> MsgBase:
        return ofpp.OFPBundleCtrlMsg(CODEC, bundle_id, type_, flags, [])

    def _discard(self, bundle_id: int, flags: int, timeout: float | None) -> None:
        try:
            self.request(self._bundle_ctrl(bundle_id, ofp.OFPBCT_DISCARD_REQUEST, flags),
                         timeout, what=f"bundle {bundle_id} discard")
        except OpenFlowError as exc:  # a lost connection discards it anyway
            log.warning("bundle discard failed bundle=%d error=%s", bundle_id, exc)

    def _alloc_xids(self, count: int) -> int:
        with self._state_lock:
            if self._next_xid + count > MAX_XID:
                self._next_xid = 1
            first = self._next_xid
            self._next_xid += count
            return first

    def _send_bytes(self, bufs: Sequence[bytes | bytearray]) -> None:
        chunks: list[bytes] = []
        pending: list[bytes | bytearray] = []
        size = 0
        for buf in bufs:
            pending.append(buf)
            size += len(buf)
            if size >= SEND_CHUNK:
                chunks.append(b"".join(pending))
                pending, size = [], 0
        if pending:
            chunks.append(b"".join(pending))
        for chunk in chunks:
            with self._send_lock:
                sock = self._sock
                if sock is None:
                    raise ConnectionLost(f"not connected to {self.mgmt_path}")
                try:
                    sock.sendall(chunk)
                except OSError as exc:
                    raise ConnectionLost(f"send to {self.mgmt_path} failed: {exc}") from exc

    def _ensure_connected(self, timeout: float) -> None:
        if self._sock is None:
            self.wait_connected(timeout)

    def _request(self, msg: Message, timeout: float | None, what: str, multipart: bool) -> Any:
        timeout = self.timeout if timeout is None else timeout
        self._ensure_connected(timeout)
        xid = self._alloc_xids(1)
        buf = serialize(msg, xid)
        waiter = _Waiter(Future(), what, multipart)
        with self._state_lock:
            self._waiters[xid] = waiter
        try:
            self._send_bytes([buf])
            return waiter.future.result(timeout)
        except FutureTimeout:
            raise RequestTimeout(f"no reply to {what} (xid {xid}) within {timeout}s") from None
        finally:
            with self._state_lock:
                self._waiters.pop(xid, None)

    @contextlib.contextmanager
    def _tracked(
        self,
        msgs: Sequence[Message],
        describe: Callable[[int], str] | None,
        timeout: float,
    ) -> Iterator[_Batch]:
        """Serialize `msgs` with a contiguous xid range whose errors are collected."""
        self._ensure_connected(timeout)
        first = self._alloc_xids(max(len(msgs), 1))

        def name(i: int) -> str:
            if describe is not None:
                return describe(i)
            msg = msgs[i]
            return type(msg).__name__ if isinstance(msg, MsgBase) else f"message #{i}"

        batch = _Batch(first, len(msgs), name)
        batch.bufs = [serialize(msg, first + i) for i, msg in enumerate(msgs)]
        with self._state_lock:
            self._batches.append(batch)
        try:
            yield batch
        finally:
            with self._state_lock:
                self._batches.remove(batch)

    # -- internals: the reader thread -------------------------------------------------

    def _run_reader(self) -> None:
        while not self._closed.is_set():
            try:
                sock, leftover = self._connect()
            except (OSError, OpenFlowError) as exc:
                # Retries are frequent: log a refusal once, not on every attempt.
                repeated = str(exc) == str(self._last_error)
                if isinstance(exc, VersionMismatch) and not repeated:
                    log.error("OpenFlow handshake refused path=%s error=%s", self.mgmt_path, exc)
                else:
                    log.debug("OpenFlow connect failed path=%s error=%s", self.mgmt_path, exc)
                self._last_error = exc
                self._closed.wait(self.retry_interval)
                continue
            with self._connected:
                self._sock = sock
                self.generation += 1
                generation = self.generation
                self._connected.notify_all()
            log.info("OpenFlow connected path=%s generation=%d", self.mgmt_path, generation)
            if generation > 1:
                self._events.put(lambda g=generation: self.run_reconnect_listeners(g))  # type: ignore[misc]
            try:
                self._read_loop(sock, leftover)
            except OSError as exc:
                self._last_error = exc
            finally:
                self._disconnected(sock)

    def _connect(self) -> tuple[socket.socket, bytearray]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.mgmt_path)
            leftover = self._handshake(sock)
            sock.settimeout(None)
            return sock, leftover
        except BaseException:
            sock.close()
            raise

    def _handshake(self, sock: socket.socket) -> bytearray:
        """Hello, then ask for NXT_PACKET_IN2 packet-ins; confirm with a barrier."""
        hello = ofpp.OFPHello(CODEC, [ofpp.OFPHelloElemVersionBitmap([ofp.OFP_VERSION])])
        sock.sendall(serialize(hello, 0))
        buf = bytearray()
        version, msg_type, _ = self._read_raw(sock, buf)
        if msg_type != ofp.OFPT_HELLO:
            raise OpenFlowError(f"expected HELLO from {self.mgmt_path}, got type {msg_type}")
        if version < ofp.OFP_VERSION:
            raise VersionMismatch(
                f"{self.mgmt_path} offers OpenFlow version {version:#x} at most; allow "
                "OpenFlow15 in the bridge's protocols column")
        # Service connections (the mgmt socket) get async messages only after asking
        # for them with a nonzero miss_send_len.
        setup = [
            ofpp.OFPSetConfig(CODEC, 0, ofp.OFPCML_NO_BUFFER),
            ofpp.NXTSetPacketInFormatMsg(CODEC, PACKET_IN_FORMAT_NXT_PACKET_IN2),
            ofpp.OFPSetAsync(CODEC, [
                ofpp.OFPAsyncConfigPropReasons(ofp.OFPACPT_PACKET_IN_MASTER, 8,
                                               PACKET_IN_REASONS),
                ofpp.OFPAsyncConfigPropReasons(ofp.OFPACPT_PACKET_IN_SLAVE, 8,
                                               PACKET_IN_REASONS),
                ofpp.OFPAsyncConfigPropReasons(ofp.OFPACPT_PORT_STATUS_MASTER, 8, 0),
                ofpp.OFPAsyncConfigPropReasons(ofp.OFPACPT_PORT_STATUS_SLAVE, 8, 0),
                ofpp.OFPAsyncConfigPropReasons(ofp.OFPACPT_FLOW_REMOVED_MASTER, 8, 0),
                ofpp.OFPAsyncConfigPropReasons(ofp.OFPACPT_FLOW_REMOVED_SLAVE, 8, 0),
            ]),
            ofpp.OFPBarrierRequest(CODEC),
        ]
        barrier_xid = len(setup)
        sock.sendall(b"".join(serialize(m, i + 1) for i, m in enumerate(setup)))
        while True:
            version, msg_type, raw = self._read_raw(sock, buf)
            msg = ofproto_parser.msg(CODEC, *ofproto_parser.header(raw), raw)
            if msg_type == ofp.OFPT_ERROR and msg is not None:
                raise OFPErrorReply(msg, f"handshake message {type(setup[msg.xid - 1]).__name__}")
            if msg_type == ofp.OFPT_ECHO_REQUEST:
                sock.sendall(serialize(ofpp.OFPEchoReply(CODEC, msg.data), msg.xid))
            if msg_type == ofp.OFPT_BARRIER_REPLY and msg.xid == barrier_xid:
                return buf

    def _read_raw(self, sock: socket.socket, buf: bytearray) -> tuple[int, int, bytes]:
        """One framed message from `buf`, receiving more as needed."""
        while True:
            if len(buf) >= HEADER.size:
                version, msg_type, length, _ = HEADER.unpack_from(buf)
                if length < HEADER.size:
                    raise OSError(f"bad OpenFlow length {length} from {self.mgmt_path}")
                if len(buf) >= length:
                    raw = bytes(buf[:length])
                    del buf[:length]
                    return version, msg_type, raw
            data = sock.recv(1 << 16)
            if not data:
                raise OSError(f"{self.mgmt_path} closed the connection")
            buf += data

    def _read_loop(self, sock: socket.socket, buf: bytearray) -> None:
        while not self._closed.is_set():
            _, msg_type, raw = self._read_raw(sock, buf)
            self._dispatch(sock, msg_type, raw)

    def _dispatch(self, sock: socket.socket, msg_type: int, raw: bytes) -> None:
        version, _, length, xid = HEADER.unpack_from(raw)
        if msg_type == ofp.OFPT_ECHO_REQUEST:
            with self._send_lock:
                sock.sendall(serialize(ofpp.OFPEchoReply(CODEC, raw[HEADER.size:]), xid))
            return
        msg = ofproto_parser.msg(CODEC, version, msg_type, length, xid, raw)
        if msg is None:
            log.warning("unparsable OpenFlow message type=%d xid=%d", msg_type, xid)
            return
        if msg_type == ofp.OFPT_ERROR:
            self._on_error(msg)
            return
        if isinstance(msg, ofpp.NXTPacketIn2 | ofpp.OFPPacketIn):
            self._on_packet_in(msg)
            return
        with self._state_lock:
            waiter = self._waiters.get(xid)
        if waiter is None:
            log.debug("unsolicited OpenFlow message type=%s xid=%d", type(msg).__name__, xid)
            return
        if waiter.multipart:
            waiter.parts.append(msg)
            if getattr(msg, "flags", 0) & ofp.OFPMPF_REPLY_MORE:
                return
            waiter.future.set_result(waiter.parts)
        else:
            waiter.future.set_result(msg)

    def _on_error(self, msg: Any) -> None:
        with self._state_lock:
            waiter = self._waiters.get(msg.xid)
            batch = next((b for b in self._batches if b.covers(msg.xid)), None)
        if waiter is not None:
            waiter.future.set_exception(OFPErrorReply(msg, waiter.what))
        elif batch is not None:
            index = (msg.xid - batch.first) % (MAX_XID + 1)
            batch.errors.append((index, OFPErrorReply(msg, batch.describe(index))))
        else:
            type_name, code_name = error_names(msg.type, msg.code)
            log.warning("OpenFlow error for an untracked request xid=%d error=%s/%s",
                        msg.xid, type_name, code_name)

    def _on_packet_in(self, msg: Any) -> None:
        if isinstance(msg, ofpp.NXTPacketIn2):
            packet = PacketIn(
                data=bytes(msg.data or b""), table_id=msg.table_id, cookie=msg.cookie,
                reason=msg.reason, userdata=msg.userdata,
                fields=_parse_oxm_fields(msg.metadata), total_len=msg.total_len)
        else:  # a plain OFPT_PACKET_IN (format not switched yet)
            packet = PacketIn(
                data=bytes(msg.data), table_id=msg.table_id, cookie=msg.cookie,
                reason=msg.reason, userdata=None,
                fields=oskenfix.split_packet_registers(dict(msg.match.items())),
                total_len=msg.total_len)
        self._events.put(lambda: self._deliver(packet))

    def _disconnected(self, sock: socket.socket) -> None:
        with self._connected:
            self._sock = None
            waiters = list(self._waiters.values())
        # Take the send lock so no sendall is half-way through the socket we close.
        with self._send_lock:
            sock.close()
        reason = ConnectionLost(f"connection to {self.mgmt_path} lost")
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(reason)
        if not self._closed.is_set():
            log.warning("OpenFlow connection lost path=%s; reconnecting", self.mgmt_path)

    # -- internals: the event thread --------------------------------------------------

    def _run_events(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            try:
                event()
            except Exception:
                log.exception("OpenFlow callback failed path=%s", self.mgmt_path)


def _bundle_add(bundle_id: int, flags: int, msg: Message) -> _BundleAdd:
    """An OFPT_BUNDLE_ADD_MESSAGE around `msg`, built by hand: os-ken's OFPBundleAddMsg
    re-serializes the inner message, and pre-serialized bytes (templates) must pass too.
    The inner xid is patched to the outer one at send time (OF1.4 7.3.9.2)."""
    inner = serialize(msg.copy() if isinstance(msg, bytearray) else msg, 0)
    head = bytearray(BUNDLE_ADD_HEAD.size)
    BUNDLE_ADD_HEAD.pack_into(head, 0, ofp.OFP_VERSION, ofp.OFPT_BUNDLE_ADD_MESSAGE,
                              BUNDLE_ADD_HEAD.size + len(inner), 0, bundle_id, 0, flags)
    return _BundleAdd(head + inner)

