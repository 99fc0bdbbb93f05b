"""mDNS advertising and browsing (python-zeroconf), headless and thread-based.

Threads: zeroconf runs its own asyncio loop thread (plus one thread per ServiceBrowser).
Callbacks from those threads never touch our state: they only put small tuples on a
bounded work queue. One worker thread per :class:`PeerDirectory` owns the peer table,
reads peers from zeroconf's cache, expires silent peers and sends refresh queries. It
never waits on the network: a service whose SRV/TXT did not come with its PTR is resolved
on zeroconf's own loop, a few at a time with a short timeout (see "Floods" below). The
owner (GUI or CLI thread) drains ``("added" | "updated" | "removed", PeerInfo)`` events
with :meth:`PeerDirectory.poll`, or reads :meth:`PeerDirectory.snapshot` at any time.

Liveness (why there is more here than a plain ServiceBrowser): a peer that leaves
cleanly sends mDNS goodbye packets and disappears at once. A peer that crashes or loses
Wi-Fi sends nothing, and python-zeroconf only drops a browsed service when its PTR
record expires -- and it raises every received PTR TTL to at least 1125 s (anti-flood
guard in ``RecordManager``), so short advertised TTLs alone would leave a dead peer
listed for ~19 minutes. So the directory tracks when it last heard each peer's
SRV/TXT/PTR records and removes a peer after ``expire_after`` seconds (default 15) of
silence. To keep live peers fresh it multicasts a PTR query (without known answers, so
nobody suppresses the reply) when a peer has been quiet for ``refresh_after`` seconds
(default 5, plus up to 40 % jitter). Replies are multicast, so one directory's query refreshes
every directory on the LAN, and the others then skip theirs: in steady state the whole
LAN sends roughly one query per ~5 s. Advertisers use a 15 s TTL for their records
(host and other TTL), so generic mDNS browsers also forget them quickly.

Floods (anyone on the LAN can send any mDNS answer). Every structure is bounded, and a
sender's share of each is bounded by its address: the UDP source address of the packet
that carried the records (see :func:`_packet_source`), not the addresses an advert
claims in its A records, which cost a forger nothing. The table keeps separate room for
jobs (``requesting``) and for everyone else, so fake volunteers cannot crowd out a job
and fake jobs cannot crowd out volunteers. Packets from loopback addresses come from
this computer and are not limited per address. Names announced without their SRV/TXT
are resolved on zeroconf's loop, at most ``MAX_PARALLEL_RESOLVES`` at once, a bounded
queue behind them, a few per sender, each given up after ``RESOLVE_TIMEOUT_MS``; a
peer whose records came complete (every real announcement) never waits behind them.
"""

from __future__ import annotations

import asyncio
import atexit
import ipaddress
import logging
import queue
import random
import secrets
import socket
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable

from zeroconf import (
    DNSOutgoing,
    DNSQuestion,
    DNSQuestionType,
    RecordUpdateListener,
    ServiceBrowser,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
    current_time_millis,
)

from .. import PROTOCOL_VERSION, __version__
from ..peertext import displayable
from .netaddr import advertised_addresses, zeroconf_kwargs
from .records import (
    MAX_NAME_CHARS,
    SERVICE_TYPE,
    PeerInfo,
    build_properties,
    clean_name,
    encode_txt,
    instance_from_service_name,
    instance_label,
    parse_txt,
    peer_from_properties,
    valid_app_version,
    valid_cores,
    valid_job_id,
    valid_port,
    valid_server_key,
    valid_state,
)

log = logging.getLogger(__name__)

DEFAULT_TTL = 15  # seconds, for SRV/TXT/A (host_ttl) and PTR (other_ttl) records
DEFAULT_EXPIRE_AFTER = 15.0  # a peer silent this long is removed
DEFAULT_REFRESH_AFTER = 5.0  # query when a known peer has been silent this long
DEFAULT_REDISCOVER_AFTER = 15.0  # query at least this often even if all is fresh
MIN_QUERY_INTERVAL = 2.0  # never send our own refresh queries more often
# Bounds against floods (see the module docstring).
RESOLVE_TIMEOUT_MS = 750  # one network resolution; a live peer answers in milliseconds
MAX_PARALLEL_RESOLVES = 8  # resolutions in flight at once (on zeroconf's loop)
MAX_QUEUED_RESOLVES = 64  # waiting for a slot; more are dropped, retried when heard again
MAX_RESOLVES_PER_SOURCE = 4  # queued or in flight, per sender address
RESOLVE_RETRY_AFTER = 10.0  # a name is resolved over the network at most this often
MAX_JOB_PEERS = 64  # table room kept for jobs (state "requesting")
MAX_OTHER_PEERS = 448  # table room for idle and sharing copies
MAX_PEERS = MAX_JOB_PEERS + MAX_OTHER_PEERS
MAX_PEERS_PER_SOURCE = 8  # per sender address, in each of the two parts of the table
MAX_TRACKED = 4 * MAX_PEERS  # names heard of, listed or not (yet)
MAX_TRACKED_PER_SOURCE = 32
MAX_WORK_ITEMS = 4096  # listener -> worker queue; a flood beyond it is dropped
MAX_EVENTS = 4096  # undrained poll() events; the oldest go first

# DNS constants (RFC 1035) - stable values, not imported from zeroconf's private const.
_FLAGS_QR_QUERY = 0x0000
_TYPE_A = 1
_TYPE_PTR = 12
_TYPE_TXT = 16
_TYPE_AAAA = 28
_TYPE_SRV = 33
_CLASS_IN = 1

_SUFFIX = "." + SERVICE_TYPE


# ---------------------------------------------------------------- Advertiser

_UPDATABLE = ("state", "port", "job_id", "server_key", "cores", "open_job", "name", "class_name")


class Advertiser:
    """Publishes this copy of the app as ``<instance>._p2p-attendance._tcp.local.``.

    The constructor blocks for ~1.5-2 s: zeroconf probes the name (3 x 250 ms) and sends
    the first announcements before returning. :meth:`update` does not block.
    """

    def __init__(
        self,
        name: str | None,
        cores: int,
        interfaces: list[str] | None = None,
        state: str = "idle",
        *,
        port: int | None = None,
        job_id: str | None = None,
        server_key: str | None = None,
        open_job: bool = False,
        class_name: str = "",
        app_version: str = __version__,
        protocol_version: int = PROTOCOL_VERSION,
        ttl: int = DEFAULT_TTL,
    ) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._zc: Zeroconf | None = None
        self._broadcast: asyncio.Future | None = None  # touched on zeroconf's loop only
        if not valid_app_version(app_version):
            raise ValueError(f"bad app_version {app_version!r}")
        self._fields = {
            "name": _local_name(name),
            "state": state,
            "cores": cores,
            "port": port,
            "job_id": job_id,
            "server_key": server_key,
            "open_job": bool(open_job),
            "class_name": _class_text(class_name),
        }
        _check_fields(self._fields)
        self._app_version = app_version
        self._revision = 0  # TXT "rev": bumped by every update(), see update()
        self._protocol_version = int(protocol_version)
        self._ttl = int(ttl)
        self.addresses: tuple[str, ...] = tuple(advertised_addresses(interfaces))
        self.instance = f"{instance_label(self._fields['name'])}-{secrets.token_hex(3)}"
        self._server = f"{self.instance}.local."

        self._zc = Zeroconf(**zeroconf_kwargs(interfaces))
        try:
            info = self._build_info(self._fields, self._revision)
            self._zc.register_service(info, allow_name_change=True)
            self.instance = instance_from_service_name(info.name) or self.instance
        except BaseException:
            self._zc.close()
            self._zc = None
            self._closed = True
            raise
        ref = weakref.ref(self)
        self._atexit_hook = lambda: (a := ref()) is not None and a.close()
        atexit.register(self._atexit_hook)

    # -- public ---------------------------------------------------------------------

    @property
    def service_name(self) -> str:
        return f"{self.instance}.{SERVICE_TYPE}"

    @property
    def closed(self) -> bool:
        return self._closed

    def peer_info(self) -> PeerInfo:
        """What we currently advertise, as other copies will parse it."""
        with self._lock:
            f = dict(self._fields)
        requesting = f["state"] == "requesting"
        return PeerInfo(
            instance=self.instance,
            name=f["name"],
            state=f["state"],
            cores=f["cores"],
            app_version=self._app_version,
            protocol_version=self._protocol_version,
            addresses=self.addresses,
            port=f["port"] if requesting else None,
            job_id=f["job_id"] if requesting else None,
            server_key=f["server_key"] if requesting else None,
            open_job=f["open_job"] if requesting else False,
            class_name=f["class_name"] if requesting else "",
        )

    def update(self, **changes) -> None:
        """Change ``state/port/job_id/server_key/cores/open_job/name`` and re-announce.

        Raises ``TypeError`` for unknown fields and ``ValueError`` for invalid values
        (e.g. ``state="requesting"`` without a port and job id). Non-blocking: the new
        records are announced three times over ~0.5 s by zeroconf's loop; a newer update
        cancels the remaining announcements of an older one, so peers never see an old
        state after a new one. A no-op after :meth:`close`.

        Every call bumps the TXT ``rev`` counter, so the announced TXT record (and the
        whole packet) never repeats an earlier one. Without it, flipping back to a
        previous state (idle -> sharing -> idle) re-sends byte-identical packets, and
        python-zeroconf drops any packet identical to one it received in the last
        0.8 s (``_DUPLICATE_PACKET_SUPPRESSION_INTERVAL``) -- all three announcements
        of a quick flip-back were lost and peers saw it only at the next refresh
        query (~5-7 s later).
        """
        unknown = set(changes) - set(_UPDATABLE)
        if unknown:
            raise TypeError(f"unknown advertiser field(s): {', '.join(sorted(unknown))}")
        with self._lock:
            if self._closed or self._zc is None:
                return
            fields = dict(self._fields)
            fields.update(changes)
            if "name" in changes:
                fields["name"] = _local_name(changes["name"])
            if "open_job" in changes:
                fields["open_job"] = bool(changes["open_job"])
            if "class_name" in changes:
                fields["class_name"] = _class_text(str(changes["class_name"] or ""))
            _check_fields(fields)
            info = self._build_info(fields, self._revision + 1)  # may raise: commit after
            self._fields = fields
            self._revision += 1
            zc = self._zc
            loop = zc.loop
            if loop is None or not loop.is_running():
                return
            asyncio.run_coroutine_threadsafe(self._async_update(zc, info), loop)

    def close(self) -> None:
        """Send goodbye packets and close zeroconf. Idempotent; safe from atexit.

        If interrupted (Ctrl-C) half-way, calling it again finishes the job.
        """
        with self._lock:
            self._closed = True
            zc = self._zc
        if zc is None:
            return
        try:
            zc.close()  # unregisters all services (goodbye, ~0.25 s), then shuts down
        except Exception:  # noqa: BLE001 - closing must not raise at shutdown
            log.debug("zeroconf close failed", exc_info=True)
        self._zc = None
        hook = getattr(self, "_atexit_hook", None)
        if hook is not None:
            atexit.unregister(hook)

    def __enter__(self) -> Advertiser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------

    async def _async_update(self, zc: Zeroconf, info: ServiceInfo) -> None:
        if self._broadcast is not None and not self._broadcast.done():
            self._broadcast.cancel()
        try:
            self._broadcast = await zc.async_update_service(info)
        except Exception:  # noqa: BLE001
            log.debug("mDNS update failed", exc_info=True)

    def _build_info(self, f: dict, revision: int) -> ServiceInfo:
        requesting = f["state"] == "requesting"
        props = build_properties(
            name=f["name"],
            state=f["state"],
            cores=f["cores"],
            app_version=self._app_version,
            protocol_version=self._protocol_version,
            job_id=f["job_id"] if requesting else None,
            server_key=f["server_key"] if requesting else None,
            open_job=f["open_job"] if requesting else False,
            revision=revision,
            class_name=f["class_name"] if requesting else "",
        )
        encode_txt(props)  # raises ValueError if anything is oversized
        return ServiceInfo(
            SERVICE_TYPE,
            f"{self.instance}.{SERVICE_TYPE}",
            parsed_addresses=list(self.addresses),
            port=f["port"] if requesting else 0,
            properties=props,
            server=self._server,
            host_ttl=self._ttl,
            other_ttl=self._ttl,
        )


def _class_text(name: str) -> str:
    text = displayable(name, MAX_NAME_CHARS)  # our own text, made to pass the peer-text rule
    while len(("cls=" + text).encode()) > 250:
        text = text[:-1]
    return text


def _local_name(name: str | None) -> str:
    text = clean_name(str(name or ""), MAX_NAME_CHARS) or default_name()
    while len(("name=" + text).encode()) > 250:  # one TXT string is at most 255 bytes
        text = text[:-1]
    return text


def _check_fields(f: dict) -> None:
    if not valid_state(f["state"]):
        raise ValueError(f"bad state {f['state']!r}")
    if not valid_cores(f["cores"]):
        raise ValueError(f"bad cores {f['cores']!r}")
    if f["port"] is not None and not valid_port(f["port"]):
        raise ValueError(f"bad port {f['port']!r}")
    if f["job_id"] is not None and not valid_job_id(f["job_id"]):
        raise ValueError(f"bad job_id {f['job_id']!r}")
    if f["server_key"] is not None and not valid_server_key(f["server_key"]):
        raise ValueError("bad server_key (want 40 chars of Z85)")
    if f["state"] == "requesting" and (f["port"] is None or f["job_id"] is None):
        raise ValueError("state 'requesting' needs a port and a job_id")


def default_name() -> str:
    """Host-based human name (first label of the host name)."""
    from p2p_attendance.host import short_machine_name

    return clean_name(short_machine_name()) or "peer"


# ---------------------------------------------------------------- PeerDirectory


class _RecordListener(RecordUpdateListener):
    """Runs on zeroconf's loop thread: only classifies records and enqueues tuples.

    Every received SRV/TXT/PTR record of our service type counts as "seen" and makes
    the worker re-read the peer from the cache, whether or not zeroconf thinks the
    record is new: ``RecordUpdate.old`` is *not* a reliable "data changed" signal.
    When an advertiser's TXT goes idle -> sharing -> idle, the second "idle" record is
    still in the cache (RFC 6762 10.2 only marks the superseded record to expire in
    1 s; it is purged by the 10 s cache sweep), so zeroconf reports it with ``old`` set
    and the ServiceBrowser fires no Updated callback either. Re-reading is cheap (no
    network) and unchanged peers produce no events.

    Each "seen" carries the sender address of its packet (:func:`_packet_source`).
    Records that came in no packet (zeroconf's cache sweep reports expired records as
    updates too) are not news and are skipped.
    """

    def __init__(self, work: queue.Queue) -> None:
        self._work = work
        self._pending: list[tuple] = []

    def async_update_records(self, zc, now, records) -> None:  # noqa: ANN001
        source = _packet_source(zc, records[0].new) if records else None
        for update in records:
            rec = update.new
            rtype = rec.type
            if rtype == _TYPE_PTR:
                if rec.name.lower() != SERVICE_TYPE:
                    continue
                name = getattr(rec, "alias", "")
            elif rtype in (_TYPE_SRV, _TYPE_TXT):
                name = rec.name
            else:
                continue
            if not name.lower().endswith(_SUFFIX):
                continue
            if rec.ttl == 0:
                self._pending.append(("gone", name))
            elif not rec.is_expired(now):
                self._pending.append(("seen", name, time.monotonic(), source))
                if rtype == _TYPE_PTR:
                    self._pending.append(("ptr", time.monotonic()))

    def async_update_records_complete(self) -> None:
        # The cache now holds the new records, so the worker can resolve from it.
        # One packet carries PTR+SRV+TXT for a peer: enqueue one "seen" per name.
        pending, self._pending = self._pending, []
        seen: set[str] = set()
        for item in pending:
            if item[0] == "seen":
                key = item[1].lower()
                if key in seen:
                    continue
                seen.add(key)
            _offer(self._work, item)


def _offer(work: queue.Queue, item: tuple) -> None:
    """Queue ``item`` unless the queue is full (a flood): dropping beats growing."""
    try:
        work.put_nowait(item)
    except queue.Full:
        pass


def _packet_source(zc: Zeroconf, record) -> str | None:  # noqa: ANN001
    """The sender address of the packet that carried ``record``; None if unknown.

    Why this address: an advert's A records say whatever its sender wants (a forger can
    claim a new address per fake advert, or the real teacher's), while a packet's UDP
    source address is the sender's own unless it forges raw IP packets. zeroconf hands
    listeners records, not packets, but it parses one packet at a time on its loop and
    each of its readers keeps the message it is handling as ``last_message`` (set before
    the records reach us); the record object we get is one of that message's answers.
    """
    try:
        for protocol in zc.engine.protocols:
            msg = protocol.last_message
            if msg is not None and any(answer is record for answer in msg.answers()):
                return msg.source[0] if msg.source else None
    except Exception:  # noqa: BLE001 - another zeroconf version: degrade to "unknown"
        log.debug("cannot tell the sender of an mDNS packet", exc_info=True)
    return None


def _limited(source: str | None) -> bool:
    """Whether per-sender limits apply: not to loopback, which is this computer itself."""
    if source is None:
        return False
    try:
        return not ipaddress.ip_address(source).is_loopback
    except ValueError:
        return True


def _freshest(zc: Zeroconf, name: str, rtype: int, now: float):  # noqa: ANN202
    """The current cached record of ``name``/``rtype``: unexpired, latest to expire.

    Not ``DNSCache.get_by_details`` (which ``ServiceInfo.load_from_cache`` uses): it
    returns the record *inserted* last, and re-caching a record equal to an older one
    keeps the older one's dict position. After TXT idle -> sharing -> idle it would
    return the superseded "sharing" record (a 1 s-TTL leftover, or even an expired one
    the 10 s sweep has not purged yet). A superseded record's expiry is either cut to
    now + 1 s (RFC 6762 10.2) or earlier than that of a newer copy with the same TTL.
    """
    best = None
    best_key = None
    for rec in zc.cache.get_all_by_details(name, rtype, _CLASS_IN):
        if rec.is_expired(now):
            continue
        key = (rec.created + rec.ttl * 1000.0, rec.created)
        if best is None or key > best_key:
            best, best_key = rec, key
    return best


def _records_from_cache(zc: Zeroconf, name: str) -> tuple[bytes, int, list[str]] | None:
    """``(txt rdata, port, addresses)`` of a service from zeroconf's cache, or None."""
    now = current_time_millis()
    txt = _freshest(zc, name, _TYPE_TXT, now)
    srv = _freshest(zc, name, _TYPE_SRV, now)
    if txt is None or srv is None:
        return None
    addresses: list[str] = []
    for rtype, family in ((_TYPE_A, socket.AF_INET), (_TYPE_AAAA, socket.AF_INET6)):
        for rec in zc.cache.get_all_by_details(srv.server, rtype, _CLASS_IN):
            if rec.is_expired(now):
                continue
            try:
                text = socket.inet_ntop(family, rec.address)
            except (OSError, ValueError, TypeError):
                continue
            if text not in addresses:
                addresses.append(text)
    if not addresses:
        return None
    return txt.text, srv.port, addresses


class PeerDirectory:
    """Browses ``_p2p-attendance._tcp`` and keeps a live table of peers.

    ``expire_after``: seconds of silence after which a peer that vanished without a
    goodbye (crash, Wi-Fi loss) is removed. ``refresh_after``: a known peer silent this
    long triggers a refresh query.
    """

    def __init__(
        self,
        interfaces: list[str] | None = None,
        ignore_instance: str | None = None,
        *,
        expire_after: float = DEFAULT_EXPIRE_AFTER,
        refresh_after: float = DEFAULT_REFRESH_AFTER,
        rediscover_after: float = DEFAULT_REDISCOVER_AFTER,
    ) -> None:
        self._ignore = ignore_instance.lower() if ignore_instance else None
        self._expire_after = float(expire_after)
        self._refresh_after = float(refresh_after)
        self._rediscover_after = float(rediscover_after)
        self._events: queue.Queue[tuple[str, PeerInfo]] = queue.Queue(MAX_EVENTS)
        self._work: queue.Queue[tuple] = queue.Queue(MAX_WORK_ITEMS)
        self._cond = threading.Condition()
        self._peers: dict[str, PeerInfo] = {}  # key: instance.lower(); guarded by _cond
        # worker-thread-only state; every name in _peers is tracked in _last_seen
        self._last_seen: dict[str, float] = {}
        self._heard_from: dict[str, str | None] = {}  # tracked name -> sender address
        self._tracked_from: Counter[str | None] = Counter()
        self._resolve_queue: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        self._resolving: dict[str, tuple[object, str | None]] = {}  # key -> (future, source)
        self._resolve_tried: dict[str, float] = {}
        self._last_query = time.monotonic()
        self._last_ptr = time.monotonic()
        self._min_query_interval = min(MIN_QUERY_INTERVAL, self._refresh_after)
        self._jitter = self._new_jitter()
        self._stop = threading.Event()
        self._closed = False
        self._close_lock = threading.Lock()

        self._zc = Zeroconf(**zeroconf_kwargs(interfaces))
        self._browser: ServiceBrowser | None = None
        try:
            self._listener = _RecordListener(self._work)
            self._zc.add_listener(self._listener, None)
            # QM (multicast-reply) questions: zeroconf's default first question is QU
            # (unicast reply to port 5353), and when several sockets share port 5353 on
            # one host (an Advertiser and a PeerDirectory in one process, or several
            # copies of the app) the kernel hands that unicast reply to just one of
            # them, possibly not ours.
            self._browser = ServiceBrowser(
                self._zc,
                SERVICE_TYPE,
                handlers=[self._on_service_state_change],
                question_type=DNSQuestionType.QM,
            )
            self._thread = threading.Thread(
                target=self._run, name="p2p-peer-directory", daemon=True
            )
            self._thread.start()
        except BaseException:
            self._zc.close()
            raise

    # -- public ---------------------------------------------------------------------

    def poll(self, timeout: float = 0) -> list[tuple[str, PeerInfo]]:
        """Drain pending ``(kind, peer)`` events; waits up to ``timeout`` for the first."""
        events: list[tuple[str, PeerInfo]] = []
        try:
            if timeout and timeout > 0:
                events.append(self._events.get(timeout=timeout))
            else:
                events.append(self._events.get_nowait())
        except queue.Empty:
            return events
        for _ in range(10_000):
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        return events

    def snapshot(self) -> list[PeerInfo]:
        """Current peers, sorted by name then instance (thread-safe)."""
        with self._cond:
            peers = list(self._peers.values())
        return sorted(peers, key=lambda p: (p.name.lower(), p.instance))

    def get(self, instance: str) -> PeerInfo | None:
        with self._cond:
            return self._peers.get(instance.lower())

    def wait_for(self, predicate: Callable[[PeerInfo], bool], timeout: float) -> PeerInfo | None:
        """First current peer matching ``predicate``, waiting at most ``timeout`` s.

        Does not consume :meth:`poll` events.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                for peer in self._peers.values():
                    if predicate(peer):
                        return peer
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return None
                self._cond.wait(min(remaining, 0.5))

    def wait_until_gone(self, instance: str, timeout: float) -> bool:
        """True once ``instance`` is not in the table (bounded wait)."""
        key = instance.lower()
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while key in self._peers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
        return True

    def close(self) -> None:
        """Stop browsing and close zeroconf. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        _offer(self._work, ("stop",))
        try:
            if self._browser is not None:
                self._browser.cancel()
        except Exception:  # noqa: BLE001
            log.debug("browser cancel failed", exc_info=True)
        try:
            self._zc.close()
        except Exception:  # noqa: BLE001
            log.debug("zeroconf close failed", exc_info=True)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=3.0)
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> PeerDirectory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- zeroconf callback (browser thread) -------------------------------------------

    def _on_service_state_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        # Added/Updated need nothing: the record listener saw the same PTR, with its sender.
        if state_change is ServiceStateChange.Removed:
            _offer(self._work, ("gone", name))

    # -- worker thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._work.get(timeout=0.5)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._handle(item)
                    # drain a bounded batch before maintenance
                    for _ in range(200):
                        try:
                            self._handle(self._work.get_nowait())
                        except queue.Empty:
                            break
                if not self._stop.is_set():
                    self._pump_resolves()
                    self._maintain(time.monotonic())
            except Exception:  # noqa: BLE001 - the directory must survive anything
                log.exception("peer directory worker error")

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "stop" or self._stop.is_set():
            return
        if kind == "ptr":
            self._last_ptr = max(self._last_ptr, item[1])
            return
        name = item[1]
        instance = instance_from_service_name(name)
        if instance is None or instance.lower() == self._ignore:
            return
        key = instance.lower()
        if kind == "gone":
            self._forget(key)
            self._remove(key)
        elif kind == "seen":
            if not self._track(key, item[3], item[2]):
                return
            # Always re-read from the cache (see _RecordListener). Records missing (a PTR
            # without its SRV/TXT): ask the network, without waiting for the answer here.
            if not self._read_cache(name, instance):
                self._queue_resolve(key, name, item[3])
        elif kind == "resolved" and key in self._last_seen:
            self._read_cache(name, instance)  # the A records may have come after SRV/TXT

    def _track(self, key: str, source: str | None, seen_at: float) -> bool:
        """Note that ``key`` was heard from ``source``; False when there is no room for it."""
        if key not in self._last_seen:
            if len(self._last_seen) >= MAX_TRACKED:
                return False
            if _limited(source) and self._tracked_from[source] >= MAX_TRACKED_PER_SOURCE:
                return False
        old = self._heard_from.get(key, "")
        if old != source:
            if key in self._heard_from:
                self._uncount(old)
            self._heard_from[key] = source
            self._tracked_from[source] += 1
        self._last_seen[key] = max(self._last_seen.get(key, 0.0), seen_at)
        return True

    def _forget(self, key: str) -> None:
        self._last_seen.pop(key, None)
        self._resolve_tried.pop(key, None)
        self._resolve_queue.pop(key, None)
        if key in self._heard_from:
            self._uncount(self._heard_from.pop(key))

    def _uncount(self, source: str | None) -> None:
        self._tracked_from[source] -= 1
        if self._tracked_from[source] <= 0:
            del self._tracked_from[source]

    # -- resolving over the network: parallel, bounded, never blocking this thread ---

    def _queue_resolve(self, key: str, name: str, source: str | None) -> None:
        if key in self._resolving or key in self._resolve_queue:
            return
        if time.monotonic() - self._resolve_tried.get(key, -RESOLVE_RETRY_AFTER) < RESOLVE_RETRY_AFTER:
            return
        if len(self._resolve_queue) >= MAX_QUEUED_RESOLVES:
            return  # dropped: tried again the next time the name is heard
        if _limited(source):
            waiting = [s for _n, s in self._resolve_queue.values()]
            waiting += [s for _f, s in self._resolving.values()]
            if waiting.count(source) >= MAX_RESOLVES_PER_SOURCE:
                return
        self._resolve_queue[key] = (name, source)

    def _pump_resolves(self) -> None:
        for key in [k for k, (future, _s) in self._resolving.items() if future.done()]:
            del self._resolving[key]
        while self._resolve_queue and len(self._resolving) < MAX_PARALLEL_RESOLVES:
            key, (name, source) = self._resolve_queue.popitem(last=False)
            loop = self._zc.loop
            if loop is None or not loop.is_running() or self._stop.is_set():
                self._resolve_queue.clear()
                return
            # Sends the questions (multicast replies, see __init__) and waits on zeroconf's
            # loop; the answers reach us through the record listener like any others.
            info = ServiceInfo(SERVICE_TYPE, name)
            request = info.async_request(self._zc, RESOLVE_TIMEOUT_MS, question_type=DNSQuestionType.QM)
            future = asyncio.run_coroutine_threadsafe(request, loop)
            future.add_done_callback(lambda _f, name=name: _offer(self._work, ("resolved", name)))
            self._resolving[key] = (future, source)
            self._resolve_tried[key] = time.monotonic()

    # -- the table --------------------------------------------------------------------

    def _read_cache(self, name: str, instance: str) -> bool:
        """Update the table from zeroconf's cache; False when the records are not there."""
        try:
            found = _records_from_cache(self._zc, name)
        except Exception:  # noqa: BLE001 - zeroconf closed, loop stopped, bad data...
            log.debug("reading %s from the cache failed", name, exc_info=True)
            return True  # nothing the network could fix
        if found is None:
            return False
        if self._stop.is_set():
            return True
        text, port, addresses = found
        peer = peer_from_properties(instance, parse_txt(text), addresses, port)
        if peer is None:
            log.debug("ignoring malformed mDNS record for %r", name)
            return True
        key = instance.lower()
        with self._cond:
            old = self._peers.get(key)
            if old == peer:
                return True
            if not self._has_room(key, peer):
                if old is not None:  # it became a job with no room left for jobs
                    del self._peers[key]
                    self._cond.notify_all()
                    self._emit(("removed", old))
                return True
            self._peers[key] = peer
            self._cond.notify_all()
        self._emit(("added" if old is None else "updated", peer))
        return True

    def _has_room(self, key: str, peer: PeerInfo) -> bool:
        """Room in ``peer``'s part of the table (jobs / others), and in its sender's share."""
        job = peer.state == "requesting"
        source = self._heard_from.get(key)
        limited = _limited(source)
        in_part = from_source = 0
        for other_key, other in self._peers.items():
            if other_key == key or (other.state == "requesting") != job:
                continue
            in_part += 1
            if limited and self._heard_from.get(other_key) == source:
                from_source += 1
        if in_part >= (MAX_JOB_PEERS if job else MAX_OTHER_PEERS):
            return False
        return from_source < MAX_PEERS_PER_SOURCE

    def _emit(self, event: tuple[str, PeerInfo]) -> None:
        """Queue an event for poll(); an owner that never polls loses the oldest, not memory."""
        for _ in range(2):
            try:
                self._events.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._events.get_nowait()
                except queue.Empty:
                    pass

    def _remove(self, key: str) -> None:
        with self._cond:
            peer = self._peers.pop(key, None)
            if peer is not None:
                self._cond.notify_all()
        if peer is not None:
            self._emit(("removed", peer))

    def _maintain(self, now: float) -> None:
        with self._cond:
            known = list(self._peers)
        stale = False
        for key in known:
            silent = now - self._last_seen.get(key, now)
            if silent > self._expire_after:
                self._forget(key)
                self._remove(key)
            elif silent > self._refresh_after + self._jitter:
                stale = True
        # forget bookkeeping for names that never became (valid) peers
        if len(self._last_seen) > len(known):
            for key in [k for k, t in self._last_seen.items() if now - t > self._expire_after]:
                self._forget(key)
        quiet = now - max(self._last_query, self._last_ptr) > self._rediscover_after + self._jitter
        if (stale or quiet) and now - self._last_query >= self._min_query_interval:
            self._send_query()
            self._last_query = now
            self._jitter = self._new_jitter()

    def _new_jitter(self) -> float:
        # Directories pick different moments to query, so usually only one of them does
        # and the (multicast) answers refresh all the others.
        return random.uniform(0, 0.4 * self._refresh_after)

    def _send_query(self) -> None:
        """Multicast a PTR question without known answers: every peer answers."""
        try:
            out = DNSOutgoing(_FLAGS_QR_QUERY, True)
            out.add_question(DNSQuestion(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN))
            self._zc.send(out)
        except Exception:  # noqa: BLE001
            log.debug("refresh query failed", exc_info=True)
