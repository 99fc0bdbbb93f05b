"""A volunteer: connects a DEALER to a requester, pulls batches when it has free capacity, computes
them in its worker processes and sends results back. One thread owns the socket.

State machine per job (after the Paranoid Pirate worker of the ZeroMQ guide):
  JOINING  --WELCOME-->  WORKING  --BYE-->  done (job finished)
     |  REJECT -> done (rejected)        |  silence > LIVENESS heartbeats
     v                                   v
  silence -> reconnect with backoff (1, 2, 4 ... s); after max_retries -> done (requester lost)
"""
from __future__ import annotations

import logging
import platform
import socket as pysocket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import zmq

from p2p_attendance import __version__
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.protocol import HEARTBEAT_S, LIVENESS, NOT_JOINED, ProtocolError
from p2p_attendance.swarm.security import client_socket_options
from p2p_attendance.swarm.workers import WorkerPool

log = logging.getLogger(__name__)

INCOMING = [t for t, spec in proto.SPECS.items() if spec.direction in ("requester -> volunteer", "both")]
MAX_INCOMING_PARTS = proto.max_parts(*INCOMING)


class Outcome(Enum):
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


@dataclass
class JobTarget:
    endpoint: str  # tcp://host:port
    server_key: bytes  # the requester's CurveZMQ public key, z85
    join_code: str = ""
    job_id: str = ""  # known in advance when found by discovery


@dataclass
class Volunteer:
    cores: int
    name: str = field(default_factory=lambda: f"{pysocket.gethostname()}")
    prefetch: int | None = None  # extra batches held so no worker waits on a round trip
    max_retries: int = 4
    descriptor: str = "auto"
    on_status: object = None  # callable(VolunteerStatus), called on the volunteer's thread
    paused: object = None  # callable() -> bool: take no new work while true (e.g. on battery)

    def __post_init__(self):
        self.status = VolunteerStatus()
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
            outcome, worked = self._session(target, context, self._ensure_pool(), stop)
            if outcome is not Outcome.LOST:
                return outcome
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
    def _ensure_pool(self) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool(self.cores, self.descriptor)
        return self._pool

    def _session(self, target: JobTarget, context, pool: WorkerPool, stop: threading.Event) -> tuple[Outcome, bool]:
        sock = context.socket(zmq.DEALER)
        client_socket_options(sock, target.server_key)
        sock.setsockopt(zmq.LINGER, 500)
        sock.setsockopt(zmq.MAXMSGSIZE, proto.max_part_bytes(*INCOMING))  # ZeroMQ applies it per part
        sock.setsockopt(zmq.RCVHWM, 4)  # a flood waits in TCP buffers (the sender's), not in our memory
        sock.connect(target.endpoint)
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

        hello = {"name": self.name[:100], "cores": len(pool), "app_version": __version__}
        if target.join_code:
            hello["join_code"] = target.join_code
        send("HELLO", **hello)
        try:
            while True:
                if stop.is_set():
                    send("BYE", reason="volunteer stopping")
                    return Outcome.STOPPED, worked
                if sock.poll(20):
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
                        self._emit()
                        return Outcome.REJECTED, worked
                    elif msg.type == "BATCH" and welcomed and credit <= 0:
                        drop("a batch beyond the credit we gave")  # an honest requester never sends one
                    elif msg.type == "BATCH" and welcomed:
                        credit -= 1
                        token = (id(session), msg["batch_id"])
                        mine.add(token)
                        queue.append((token, msg["frames"], *proto.batch_frames(msg)))
                    elif msg.type == "BYE":
                        self.status.state, self.status.message = "idle", msg.get("reason", "job finished")
                        self._emit()
                        return Outcome.FINISHED, worked
                    # HEARTBEAT and anything unexpected: being heard is all that matters
                while queue and (slot := pool.idle_slot()) is not None:
                    pool.submit(slot, *queue.popleft())
                for result in pool.poll():
                    kind, token = result[0], result[1]
                    if token not in mine:
                        continue  # from a previous connection: the requester re-queued it already
                    mine.discard(token)
                    batch_id = token[1]
                    if kind == "result":
                        _, _, frame_list, encodings, crops, busy_s = result
                        try:
                            send("RESULT", [encodings, *crops], batch_id=batch_id, frames=frame_list, busy_s=round(busy_s, 4))
                            worked = True
                            self.status.frames_done += len(frame_list)
                            self._emit()
                        except ProtocolError as exc:  # e.g. more faces than a RESULT may carry
                            send("ERROR", batch_id=batch_id, message=f"result could not be sent: {exc}"[:500])
                    else:
                        log.warning("batch %s failed: %s", batch_id, result[2])
                        send("ERROR", batch_id=batch_id, message=str(result[2])[:500])
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
                if now - last_heard > HEARTBEAT_S * LIVENESS:
                    return Outcome.LOST, worked
        finally:
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
                self.on_status(self.status)
            except Exception:
                log.exception("status callback failed")


def default_volunteer_name() -> str:
    return f"{pysocket.gethostname()} ({platform.system()})"
