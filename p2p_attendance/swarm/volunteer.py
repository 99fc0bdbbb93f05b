"""A volunteer: connects a DEALER to a requester, pulls batches when it has free capacity, computes
them in its worker processes and sends results back. One thread owns the socket.

Each connection starts with admission (admit(): SPAKE2 with the join code on the requester's
advertised port, which tells the data port); the data socket then uses the client key admitted.

State machine per job (after the Paranoid Pirate worker of the ZeroMQ guide):
  JOINING  --WELCOME-->  WORKING  --BYE-->  done (job finished)
     |  REJECT -> done (rejected)        |  silence > LIVENESS heartbeats
     v                                   v
  silence -> reconnect with backoff (1, 2, 4 ... s); after max_retries -> done (requester lost)
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket as pysocket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from p2p_attendance import __version__
from p2p_attendance.host import machine_name
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.protocol import HEARTBEAT_S, LIVENESS, NOT_JOINED, SILENCE_WHILE_OWED_S, ProtocolError
from p2p_attendance.swarm.security import VolunteerPake, client_socket_options, heartbeat_options
from p2p_attendance.swarm.workers import BatchDone, WorkerPool

log = logging.getLogger(__name__)

MAX_INCOMING_PARTS = proto.most_parts("volunteer")
IDLE_WAKE_S = 0.25  # the longest an idle loop sleeps: how soon it notices stop, pause and a dead worker
# zmq_poll takes file descriptors on POSIX only (on Windows only sockets): there the loop polls its
# socket alone, and wakes every BUSY_WAKE_S while a worker has work, to pick up its answer.
POLL_PIPES = os.name != "nt"
BUSY_WAKE_S = 0.02


class Outcome(Enum):
    """How a volunteer's time with one job ended."""

    FINISHED = "finished"  # the requester said the job is done
    REJECTED = "rejected"  # wrong join code, version mismatch, job full
    LOST = "lost"  # the requester stopped answering
    STOPPED = "stopped"  # we were asked to stop (Ctrl-C, share toggle off)


@dataclass
class VolunteerStatus:
    """What the volunteer is doing now, for the CLI and the Share-my-CPU screen."""

    state: str = "idle"  # idle / joining / working / reconnecting
    endpoint: str = ""
    job_id: str = ""
    frames_done: int = 0
    message: str = ""
    refusal: str = ""  # why the requester did not let us in (its words; sharing.refusal_words says it plainly)
    retry_after_s: float = 0.0  # with a refusal: when it takes a new try (its budget of wrong codes is spent)


@dataclass
class JobTarget:
    """A requester to join: its admission endpoint, its public key and the join code."""

    endpoint: str  # tcp://host:port of the admission port
    server_key: bytes  # the requester's CurveZMQ public key, z85
    join_code: str = ""
    job_id: str = ""  # known in advance when found by discovery
    open_job: bool = False  # the requester admits anyone (its code is empty)


ADMISSION_TIMEOUT_S = 5.0
WORKERS_START_S = 120.0  # the longest a volunteer waits for its workers to load before it joins anyway
MAX_BUSY_WAIT_S = 60.0  # the longest we wait when a requester says it is answering too many attempts


class AdmissionRefused(Exception):
    """The requester did not admit us: wrong code (or not the teacher's computer), or busy
    (retry_after_s > 0)."""

    def __init__(self, reason: str, retry_after_s: float = 0.0):
        super().__init__(reason)
        self.reason, self.retry_after_s = reason, retry_after_s


def _read_admission(sock: pysocket.socket, reader: proto.AdmissionReader, deadline: float) -> proto.Message:
    while True:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        data = sock.recv(proto.MAX_ADMISSION_BYTES)
        if not data:
            raise ConnectionError("the requester closed the connection")
        messages = reader.feed(data)
        if messages:
            return proto.decode(messages[0])


def admit(target: JobTarget, keypair: tuple[bytes, bytes], timeout_s: float = ADMISSION_TIMEOUT_S) -> str:
    """Prove we know the join code to the holder of target.server_key, without sending it, and
    get our client key admitted; returns the data socket's endpoint. Raises AdmissionRefused,
    OSError (unreachable) or ProtocolError."""
    host, _, port = target.endpoint[len("tcp://") :].rpartition(":")
    pake = VolunteerPake("" if target.open_job else target.join_code, target.server_key, keypair[0])
    deadline = time.monotonic() + timeout_s
    reader = proto.AdmissionReader()
    with pysocket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as sock:
        sock.sendall(proto.pack_admission(proto.encode("PAKE", [z85.decode(keypair[0]), pake.start()])))
        msg = _read_admission(sock, reader, deadline)
        if msg.type == "PAKE_REPLY":
            sock.sendall(proto.pack_admission(proto.encode("CONFIRM", [pake.confirm(msg.parts[0])])))
            msg = _read_admission(sock, reader, deadline)
    if msg.type == "REJECT":
        raise AdmissionRefused(msg["reason"], float(msg.get("retry_after_s", 0.0)))
    if msg.type == "ADMIT" and pake.requester_proved(msg.parts[0], msg["data_port"]):
        return f"tcp://{host}:{msg['data_port']}"
    raise AdmissionRefused("the computer at this address did not prove it knows the join code: not the teacher's computer?")


@dataclass
class Volunteer:
    """A student's computer helping a requester (run_job): admission, then batches run on its worker pool."""

    cores: int
    name: str = field(default_factory=machine_name)
    prefetch: int | None = None  # extra batches held so no worker waits on a round trip
    max_retries: int = 4
    descriptor: str = "auto"
    on_status: object = None  # callable(VolunteerStatus), called on the volunteer's thread
    paused: object = None  # callable() -> bool: take no new work while true (e.g. on battery)
    # The CurveZMQ key to connect with (public, secret; z85). Only the teacher's own worker gets one,
    # from the job that made it: the requester trusts that key. Others make a fresh key per connection.
    client_keypair: tuple[bytes, bytes] | None = None
    join_code_now: object = None  # callable() -> str: the code to try now (the Share screen's field can be corrected)

    def __post_init__(self):
        self.status = VolunteerStatus()
        self._busy_wait_s = 0.0
        self._pool: WorkerPool | None = None
        self.dropped = 0  # messages from requesters that were malformed, too many parts, or beyond our credit
        if self.prefetch is None:
            self.prefetch = max(1, self.cores // 2)

    # -- public -------------------------------------------------------------------------------
    def run_job(self, target: JobTarget, stop: threading.Event, context: zmq.Context | None = None) -> Outcome:
        """Serve one job until it ends; returns why it ended."""
        context = context or zmq.Context.instance()
        self.status = VolunteerStatus(state="joining", endpoint=target.endpoint)
        self._emit()
        retries = 0
        while not stop.is_set():
            self._busy_wait_s = 0.0
            pool = self._ensure_pool(stop)  # may wait for the workers: stop and the code are read after it
            if stop.is_set():
                break  # not admitted with a code (a wrong one would spend one of the class's tries) only to leave
            if callable(self.join_code_now) and not target.open_job:
                target = dataclasses.replace(target, join_code=self.join_code_now() or target.join_code)
            outcome, worked = self._session(target, context, pool, stop)
            if outcome is not Outcome.LOST:
                return outcome
            if self._busy_wait_s:  # answered, but busy: not a silent requester
                delay = min(MAX_BUSY_WAIT_S, self._busy_wait_s)
                self.status.state, self.status.message = "reconnecting", f"the requester is busy; retry in {delay:.0f} s"
                self.status.retry_after_s = self._busy_wait_s
                self._emit()
                if stop.wait(delay):
                    break
                continue
            retries = 0 if worked else retries + 1
            if retries > self.max_retries:
                return Outcome.LOST
            delay = min(16.0, 2.0 ** (retries - 1)) if retries else 0.5
            self.status.state, self.status.message = "reconnecting", f"requester silent; retry in {delay:.0f} s"
            self._emit()
            if stop.wait(delay):
                break
        return Outcome.STOPPED

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- one connection -------------------------------------------------------------------------
    def _ensure_pool(self, stop: threading.Event) -> WorkerPool:
        """The worker pool, its workers ready: a volunteer that joined while they were still
        starting would be handed batches that wait on them while other peers sit idle."""
        if self._pool is None:
            self._pool = WorkerPool(self.cores, self.descriptor)
        self._pool.wait_ready(WORKERS_START_S, stop)
        return self._pool

    def _session(self, target: JobTarget, context, pool: WorkerPool, stop: threading.Event) -> tuple[Outcome, bool]:
        keypair = self.client_keypair or zmq.curve_keypair()  # this connection's client key: admission lets it in
        try:
            data_endpoint = admit(target, keypair)
        except AdmissionRefused as exc:
            self.status.refusal = exc.reason
            if exc.retry_after_s:
                self._busy_wait_s = exc.retry_after_s
                return Outcome.LOST, False
            self.status.state, self.status.message = "idle", f"rejected: {exc.reason}"
            self.status.retry_after_s = 0.0
            self._emit()
            return Outcome.REJECTED, False
        except (OSError, ProtocolError) as exc:
            log.info("admission at %s failed: %s", target.endpoint, exc)
            return Outcome.LOST, False
        self.status.refusal, self.status.retry_after_s = "", 0.0  # let in
        sock = context.socket(zmq.DEALER)
        client_socket_options(sock, target.server_key, keypair)
        heartbeat_options(sock)
        sock.setsockopt(zmq.LINGER, 500)
        sock.setsockopt(zmq.MAXMSGSIZE, proto.largest_part("volunteer"))  # ZeroMQ applies it per part
        sock.setsockopt(zmq.RCVHWM, 4)  # a flood waits in TCP buffers (the sender's), not in our memory
        sock.connect(data_endpoint)
        # The connection's end (the requester exited, or ZMTP heartbeats timed out) is the sure
        # sign of a lost requester; silence is one only while nothing can be on its way.
        disconnects = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        queue: deque = deque()  # batches received, not yet given to a worker
        session = object()  # tags work handed to the pool: results of an older session or job are dropped
        mine: set = set()
        welcomed = False
        worked = False
        owed_credit = 0  # credit held back while paused
        credit = 0  # batches the requester may still send us: what we granted less what came
        now = time.monotonic()
        last_heard, last_sent = now, 0.0

        def send(msg_type, parts=None, **fields):
            nonlocal last_sent, credit
            sock.send_multipart(proto.encode(msg_type, parts, **fields))
            last_sent = time.monotonic()
            credit += fields.get("credit", 0) if msg_type == "READY" else 0

        def drop(why: str) -> None:
            self.dropped += 1
            if self.dropped <= 20 or self.dropped % 1000 == 0:
                log.warning("dropped message #%d from the requester: %s", self.dropped, why)

        closed = False  # the connection ended: what arrived before its end (a BYE) is still read first
        try:
            send("HELLO", name=self.name[:100], cores=len(pool), app_version=__version__)
            while True:
                if stop.is_set():
                    send("BYE", reason="volunteer stopping")
                    return Outcome.STOPPED, worked
                # Sleep until the requester or a worker has something, or a heartbeat is due: an
                # idle volunteer must cost the student's laptop nothing (no spinning).
                poller = zmq.Poller()
                poller.register(sock, zmq.POLLIN)
                poller.register(disconnects, zmq.POLLIN)
                for fd in pool.fileno_list() if POLL_PIPES else ():
                    poller.register(fd, zmq.POLLIN)
                wait_s = min(IDLE_WAKE_S, max(0.0, last_sent + HEARTBEAT_S - time.monotonic()))
                if not POLL_PIPES and pool.busy():
                    wait_s = min(wait_s, BUSY_WAKE_S)
                ready = dict(poller.poll(wait_s * 1000))
                if ready.get(disconnects):
                    recv_monitor_message(disconnects)  # EVENT_DISCONNECTED, the only one asked for
                    closed = True
                if closed and not ready.get(sock):
                    return Outcome.LOST, worked
                if ready.get(sock):
                    frames = sock.recv_multipart(copy=False)  # counted before any part is copied
                    last_heard = time.monotonic()
                    if len(frames) > MAX_INCOMING_PARTS:
                        drop(f"{len(frames)} parts")
                        continue
                    try:
                        msg = proto.decode(frames)
                    except ProtocolError as exc:
                        drop(f"malformed: {exc}")
                        continue
                    if msg.type == "WELCOME" and not welcomed:
                        welcomed = True
                        pool.start_job(msg["params"], msg["roster_ids"], msg.parts[0])
                        self.status.state, self.status.job_id = "working", msg["job_id"]
                        self._emit()
                        send("READY", credit=min(proto.MAX_CREDIT, len(pool) + self.prefetch))
                    elif msg.type == "REJECT" and welcomed and msg["reason"].startswith(NOT_JOINED):
                        return Outcome.LOST, worked  # it gave us up for dead: join again on a new socket
                    elif msg.type == "REJECT":
                        self.status.state, self.status.message = "idle", f"rejected: {msg['reason']}"
                        self.status.refusal, self.status.retry_after_s = msg["reason"], 0.0
                        self._emit()
                        return Outcome.REJECTED, worked
                    elif msg.type == "BATCH" and welcomed and credit <= 0:
                        drop("a batch beyond the credit we gave")  # an honest requester never sends one
                    elif msg.type == "BATCH" and welcomed:
                        credit -= 1
                        token = (id(session), msg["batch_id"])
                        mine.add(token)
                        queue.append((token, msg["frames"], *proto.batch_frames(msg), proto.batch_seats(msg)))
                    elif msg.type == "BYE":
                        self.status.state, self.status.message = "idle", msg.get("reason", "job finished")
                        self._emit()
                        return Outcome.FINISHED, worked
                    # HEARTBEAT and anything unexpected: being heard is all that matters
                finished = pool.poll()
                # A batch held in reserve goes to a worker the moment it frees, not when the
                # requester's next message happens to wake this loop (a round trip per batch).
                while queue and (slot := pool.idle_slot()) is not None:
                    pool.submit(slot, *queue.popleft())
                for result in finished:
                    if result.token not in mine:
                        continue  # from a previous connection: the requester re-queued it already
                    mine.discard(result.token)
                    batch_id = result.token[1]
                    if isinstance(result, BatchDone):
                        try:
                            send("RESULT", [result.encodings, *result.crops], batch_id=batch_id, frames=result.frames, busy_s=round(result.busy_s, 4))
                            worked = True
                            self.status.frames_done += len(result.frames)
                            self._emit()
                        except ProtocolError as exc:  # e.g. more faces than a RESULT may carry
                            send("ERROR", batch_id=batch_id, message=f"result could not be sent: {exc}"[:500])
                    else:
                        message = getattr(result, "message", "unexpected answer from a worker")
                        log.warning("batch %s failed: %s", batch_id, message)
                        send("ERROR", batch_id=batch_id, message=message[:500])
                    owed_credit += 1
                if owed_credit and not self._is_paused():
                    send("READY", credit=min(owed_credit, proto.MAX_CREDIT))
                    owed_credit = 0
                if not pool.alive():  # every worker died (out of memory?): hand the work back
                    send("BYE", reason="this computer's workers stopped")
                    self.close()
                    return Outcome.LOST, worked
                now = time.monotonic()
                if now - last_sent >= HEARTBEAT_S:
                    send("HEARTBEAT")
                if now - last_heard > (SILENCE_WHILE_OWED_S if credit > 0 else HEARTBEAT_S * LIVENESS):
                    return Outcome.LOST, worked
        finally:
            sock.disable_monitor()
            disconnects.close(linger=0)
            sock.close(linger=500 if not stop.is_set() else 200)

    def _is_paused(self) -> bool:
        paused = bool(callable(self.paused) and self.paused())
        wanted = "paused" if paused else "working"
        if self.status.state in ("working", "paused") and self.status.state != wanted:
            self.status.state = wanted
            self.status.message = "on battery: paused until plugged in" if paused else ""
            self._emit()
        return paused

    def _emit(self) -> None:
        if callable(self.on_status):
            try:
                self.on_status(dataclasses.replace(self.status))  # a copy: another thread may show it later
            except Exception:
                log.exception("status callback failed")
