"""The requester: lets onto its data ROUTER (a ZAP handler) only the keys its admission door
admitted (swarm/admission.py, the join code over SPAKE2), hands out frame batches on request and
collects results. One thread owns the sockets, the door's included; the frames come from a
producer thread (swarm/frames.py) and RESULTs are read by swarm/wire.py.

Per-peer state machine (swarm/peers.py): JOINED --(results)--> WORKING --BYE / silence / a
proven lie--> LEFT / LOST / QUARANTINED. Whatever a departing peer held goes back to the front of
the queue at once.

Integrity (swarm/checks.py has the policy): a claimed sighting counts only once the teacher's own
computer has recomputed a descriptor at its box (a small verifier process, fed the frame bytes
the requester kept, so the socket loop never waits on it); a secret share of batches is re-run
on a peer the requester picks, the teacher's own worker having the last word; a proven lie
quarantines the liar's machine and voids all its work.
"""
from __future__ import annotations

import itertools
import logging
import queue
import random
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import zmq
from zmq.utils import z85

from p2p_attendance import PROTOCOL_VERSION, __version__
from p2p_attendance.attendance.evidence import EvidenceKeeper
from p2p_attendance.attendance.model import FrameResult
from p2p_attendance.attendance.tally import choose_window_s, window_starts
from p2p_attendance.compute.batch import JobParams
from p2p_attendance.compute.limits import MAX_SEATS
from p2p_attendance.compute.tracking import remember_seats
from p2p_attendance.compute.video import VideoInfo
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm import wire
from p2p_attendance.swarm.admission import Admission
from p2p_attendance.swarm.checks import (
    DEFAULT_SHARE,
    Answerer,
    BatchAnswer,
    FrameCopy,
    Sighting,
    SightingLedger,
    Verdict,
    answer_problem,
    answers_agree,
    claim_problem,
    distance_to_student,
    judge_sighting,
    settle,
    should_check,
)
from p2p_attendance.swarm.frames import FrameProducer, batch_parts, encoded_frames, frame_batches, frame_payload, frame_size, sampled_frames
from p2p_attendance.swarm.peers import TRUSTED_MACHINE, MachineRecord, PeerRecord, PeerState, machine_key
from p2p_attendance.swarm.protocol import HEARTBEAT_S, LIVENESS, ProtocolError
from p2p_attendance.swarm.scheduler import Batch, Scheduler
from p2p_attendance.swarm.seams import BatchNames, SavedBatch, Seams, Settled
from p2p_attendance.swarm.security import (
    heartbeat_options,
    key_to_hex,
    new_keypair,
    raise_open_file_limit,
    server_socket_options,
)
from p2p_attendance.swarm.workers import BatchDone, Verified, WorkFailed

log = logging.getLogger(__name__)

DATA_RCVHWM = 16  # messages queued per connection before libzmq stops reading it
ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by the ZAP protocol (RFC 27)
STALL_MIN_S = 60.0  # a batch held longer than max(this, 10x the typical batch time) goes elsewhere
MAX_BAD_MESSAGES = 50  # a peer that sends this many broken or impossible messages is shut out
# Peers that left or were lost without doing a frame stay in the table for a while, then are
# forgotten: 10,000 join-and-vanish connections kept 10,000 records, each scanned and sent to the
# GUI every heartbeat (idle CPU 0.8 -> 10.8 %). Those that did frames stay for the report.
MAX_DEPARTED_IDLE_PEERS = 50
# Evidence crops of the batches held until their seams settle, all together: beyond it a batch is
# held without its crops (evidence is the best few a student; a RESULT may carry 64 KiB a face).
MAX_HELD_CROP_BYTES = 32 * 1024 * 1024
CHECKPOINT_UNWRITTEN = "The checkpoint could not be written"  # the report's warning, said once a job


MAX_CONNECTIONS_PER_MACHINE = 3  # a laptop needs one; a reconnect may briefly overlap the old one
# A machine that answers ERROR this often, and more often than it answers, is excluded: honest
# peers fail a batch only on a broken frame.
MAX_ERRORS_PER_MACHINE = 3
LOCAL_WORK_LIMIT_S = 300.0  # the checker answers in ms (a sighting) or seconds (a batch): longer is a hang
LOCAL = b""  # the teacher's own computer (the verifier process), where a peer identity is expected
CHECKPOINT = ("checkpoint", "an earlier run")  # who claimed a sighting read back from the checkpoint


@dataclass(frozen=True)
class SeamSource:
    """Who computed a batch, as its seams remember it (swarm/seams.BatchNames.source)."""

    identity: bytes
    machine: tuple[str, str]
    trusted: bool


def resumed_source(batch: SavedBatch) -> SeamSource:
    """Who computed a batch an interrupted run saved: this computer, or a volunteer's word from
    then, unchecked and tied to no machine connected now. Each such batch answers for itself: it
    names faces only as claims to check, takes back none, and a lie found in it takes back what
    it named."""
    if batch.trusted:
        return SeamSource(LOCAL, TRUSTED_MACHINE, True)
    return SeamSource(LOCAL, (CHECKPOINT[0], f"{CHECKPOINT[1]}, frames {batch.indexes[0]}-{batch.indexes[-1]}"), False)


@dataclass(frozen=True)
class HeldBatch:
    """A stored batch's answer until its seams are settled: what counting its faces needs then."""

    names: BatchNames  # its boxes and encodings as the seams see them, and who computed it
    frames: list[dict]  # the batch's frame entries
    payloads: list[bytes]  # the frames as they travelled (a claim's copy to check)
    crops: tuple[list[bytes], ...]  # per frame, per face: the evidence crop the answer sent

    @property
    def source(self) -> SeamSource:
        return self.names.source

    @property
    def crop_bytes(self) -> int:
        return sum(len(crop) for frame in self.crops for crop in frame)


@dataclass
class JobSpec:
    """What a job asks for: the video, sampling, matching parameters, join code and batching."""

    info: VideoInfo
    sample_fps: float
    params: JobParams
    join_code: str = ""
    open_job: bool = False  # anyone on the network may help (trusted labs)
    batch_size: int = 8
    jpeg_quality: int = 0  # 0: by the frame's width (video.jpeg_quality_for)
    keyframes: bool = True  # sampled keyframes of H.264/HEVC videos travel as they are (no re-encoding)
    skip: frozenset[int] = frozenset()  # sample indexes already done (resume)
    validation_share: float = DEFAULT_SHARE  # batches done twice by different peers and compared
    local_key: str = ""  # the CurveZMQ public key (z85) the job made for the teacher's own worker: trusted
    verify_sightings: bool = True  # presence counts only sightings verified on this computer
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


Event = Callable[[str, object], None]


@dataclass
class CheckRecord:
    """A batch done again to check an answer: the answers so far, (who, connection, answer)."""

    original: int
    answers: list[tuple[Answerer, bytes, BatchAnswer]]


class Requester:
    """Runs one job: admits volunteers, hands out batches, checks and collects their results."""

    def __init__(
        self,
        spec: JobSpec,
        listen: str = "tcp://0.0.0.0:0",
        on_event: Event | None = None,
        result_sink=None,
        keypair: tuple[bytes, bytes] | None = None,
        prior_results: dict[int, FrameResult] | None = None,
        prior_batches: list[SavedBatch] | None = None,
        result_discard=None,
        watch=None,
        attempt_budget: dict | None = None,
        on_attempt_budget=None,
    ):
        self.spec = spec
        self.on_event = on_event or (lambda kind, payload: None)
        # e.g. the checkpoint: called with each batch's FrameResults and SavedBatch once its seams
        # are settled, and with frames changed later (batch None)
        self.result_sink = result_sink
        self.result_discard = result_discard  # called with frame indexes whose results were voided
        self.watch = watch  # called every heartbeat on the requester's thread (the job's own checks)
        self.public_key, self._secret_key = keypair or new_keypair()
        raise_open_file_limit()  # every connection is a descriptor: 1,024 is soon used up
        # A context of its own: the ZAP handler bound below answers for this context's sockets only.
        self.context = zmq.Context()
        self.zap = self.context.socket(zmq.REP)
        self.zap.setsockopt(zmq.LINGER, 0)
        self.zap.bind(ZAP_ENDPOINT)
        # The data socket: CurveZMQ, and only client keys that completed admission (ZAP).
        self.socket = self.context.socket(zmq.ROUTER)
        server_socket_options(self.socket, self.public_key, self._secret_key)
        self.socket.setsockopt(zmq.ZAP_DOMAIN, b"data")
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unroutable sends raise, not vanish
        self.socket.setsockopt(zmq.MAXMSGSIZE, proto.largest_part("requester"))  # libzmq: per part
        self.socket.setsockopt(zmq.RCVHWM, DATA_RCVHWM)
        heartbeat_options(self.socket)
        # The admission port (the one advertised): the join-code exchange (swarm/admission.py).
        self.admission = Admission(self.context, spec, self.public_key, self.on_event, on_attempt_budget or (lambda state: None), attempt_budget)
        host = listen.rsplit(":", 1)[0]
        if listen.rsplit(":", 1)[-1] in ("0", "*"):
            port = self.admission.socket.bind_to_random_port(host)
            self.data_port = self.socket.bind_to_random_port(host)
        else:  # a fixed port (a lab's firewall rule): data on the next one
            port = int(listen.rsplit(":", 1)[-1])
            self.admission.socket.bind(listen)
            self.data_port = port + 1
            self.socket.bind(f"{host}:{self.data_port}")
        self.port = port
        self.admission.data_port = self.data_port
        self.endpoint = f"{host.replace('0.0.0.0', '127.0.0.1').replace('*', '127.0.0.1')}:{port}"
        self._poller = zmq.Poller()
        for sock in (self.socket, self.admission.socket, self.zap):
            self._poller.register(sock, zmq.POLLIN)
        self.peers: dict[bytes, PeerRecord] = {}
        self._departed_idle: dict[bytes, None] = {}  # left/lost without a frame, oldest first: forgotten past MAX_DEPARTED_IDLE_PEERS
        self.results: dict[int, FrameResult] = dict(prior_results or {})  # resumed ones included
        self._prior_batches = list(prior_batches or ())  # resumed batches beside a gap, for the seams there
        self.evidence = EvidenceKeeper(spec.info.duration_s)  # crops behind the verdicts, for the review
        self.scheduler = Scheduler(clock=time.monotonic, machine_of=self._machine_of)  # failures, checks and bans count per machine
        self._batch_seconds: list[float] = []  # recent batch round trips, for the stall deadline
        self.total = spec.info.sample_count(spec.sample_fps)
        self.dropped_messages = 0
        self.bytes_sent = 0  # every message's parts, as handed to ZeroMQ
        self.warnings: list[str] = []
        self._roster_ids = set(spec.params.roster_ids)
        self._roster_blob = np.asarray(spec.params.roster_encodings, np.float32).tobytes()
        self.started = time.monotonic()
        self._done_by: dict[int, tuple[bytes, list[dict]]] = {}  # batch id -> (peer, frames), to redo a liar's work
        self._checks: dict[int, dict] = {}  # check batch id -> what it checks
        self._check_secret = secrets.token_hex(16)
        self.batch_ids = itertools.count()  # one sequence for all batches: a check copy looks like any other
        self._redo_threads: list[threading.Thread] = []
        self._redo_queue: queue.Queue = queue.Queue(maxsize=8)  # bounded: a long redo must not fill memory
        self._closed = threading.Event()  # the readers behind the bounded queues stop when it is set
        self._init_integrity()
        self._most_parts = 1 + proto.most_parts("requester")  # the routing id comes first

    @property
    def server_key_hex(self) -> str:
        return key_to_hex(self.public_key)

    # -- main loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> bool:
        """Run the job to the end; True when every frame was processed (or given up)."""
        stop = stop or threading.Event()
        producer = FrameProducer(self.spec, depth=8, batch_ids=self.batch_ids)
        producer.start()
        self._start_verifier()
        self._start_prior_reader()
        last_beat = 0.0
        last_progress = 0.0
        producer_done = False
        try:
            while not stop.is_set():
                events = dict(self._poller.poll(20))
                if self.zap in events:
                    self._serve_zap()
                if self.admission.socket in events:
                    self.admission.serve()
                if self.socket in events:
                    for _ in range(100):  # drain what is there, bounded
                        try:
                            frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        if len(frames) > self._most_parts:  # no legal message has that many parts
                            self._count_bad(frames[0].bytes, f"message of {len(frames) - 1} parts")
                            continue
                        try:
                            self._on_frames(frames)
                        except Exception:  # a safety net: no peer's message may end the job
                            log.exception("unexpected error handling a message; dropped")
                            self._count_bad(frames[0].bytes, "message caused an internal error")
                producer_done = self._refill(producer) or producer_done
                self._dispatch()
                self._rescue_failed()
                self._pump_local()
                now = time.monotonic()
                if now - last_beat >= HEARTBEAT_S:
                    last_beat = now
                    self.admission.expire(now)
                    self._heartbeat_and_expire(now)
                if now - last_progress >= 0.25:
                    last_progress = now
                    self._progress(now)
                if producer_done and self.scheduler.done and self._redo_idle() and not self._local_batch_pending():
                    self._seams_safely(self.seams.finish)  # a batch given up never comes: the seams beside it settle now
                    if self._local_idle():
                        break
            finished = self.scheduler.done and self._local_idle()
            self._seams_safely(self.seams.finish, save=finished)  # stopped early: batches still held count on the seams they have
            if producer.ended_early_at is not None:
                got = len(self.results)
                self.warnings.append(
                    f"The video could not be read past {got / self.spec.sample_fps:.0f} s; the report covers what was read."
                    + (f" ({producer.error})" if producer.error else "")
                )
                self.total = got
            if self.unsettled:
                self.warnings.append(f"{self.unsettled} disagreement(s) between computers could not be settled (this computer's checker was not available).")
            for batch in (b for b in self._gave_up if b.check_of is None):
                self.warnings.append(f"Frames {batch.frames[0]['index']}-{batch.frames[-1]['index']} failed on every peer and were skipped.")
            self._progress(time.monotonic())
            return finished
        finally:
            producer.stop_event.set()
            self._goodbye_all("job finished" if self.scheduler.done else "job stopped")
            self.close()

    def close(self) -> None:
        """Close the ports (also for a job stopped before it ran)."""
        self._closed.set()
        if self._verifier_starter is not None:
            self._verifier_starter.join(60)  # a pool half started would leave its processes behind
            self._adopt_verifier()
        if self._verifier is not None:
            self._verifier.close()
        self.admission.close()
        for sock in (self.socket, self.zap):
            sock.close(linger=0)
        self.context.term()

    def _refill(self, producer: FrameProducer) -> bool:
        want = sum(p.credit for p in self.peers.values() if p.active) + 2
        while self.scheduler.backlog < want:
            try:
                frames, payloads = self._redo_queue.get_nowait()
            except queue.Empty:
                break
            self.scheduler.add_first(Batch(next(self.batch_ids), frames, payloads))
        # Keep a few batches ready beyond what peers can take right now.
        while self.scheduler.backlog < want:
            try:
                item = producer.out.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                self.scheduler.finish_input()
                return True
            self.scheduler.add(item)
        return False

    def _dispatch(self) -> None:
        for identity, peer in self.peers.items():
            while peer.credit > 0 and peer.active:
                batch = self.scheduler.assign(identity)
                if batch is None:
                    break  # nothing this peer may take; another peer may still take what is left
                peer.credit -= 1
                peer.state = PeerState.WORKING
                parts, codec_fields = batch_parts(batch, self.spec)
                if not batch.tokens:  # opaque: a check copy gets fresh tokens, like any batch
                    batch.tokens = [secrets.randbits(52) for _ in batch.frames]
                frames = [{"token": token, **({"keyframe": True} if f.get("keyframe") else {})} for token, f in zip(batch.tokens, batch.frames)]
                seats = self._seats_of(batch)
                self._send(identity, "BATCH", parts, batch_id=batch.id, frames=frames, **codec_fields, **({"seats": [list(s) for s in seats]} if seats else {}))

    def _seats_of(self, batch: Batch) -> tuple:
        """The seats a batch is searched with: those known when it is first handed out."""
        if batch.seats is None:
            batch.seats = tuple(self._seats)
        return batch.seats

    def _redo_idle(self) -> bool:
        # Threads first: a thread may put its last batch and exit between the two checks.
        return not any(t.is_alive() for t in self._redo_threads) and self._redo_queue.empty()

    def _heartbeat_and_expire(self, now: float) -> None:
        for identity, peer in list(self.peers.items()):
            if not peer.active:
                continue
            if now - peer.last_heard > HEARTBEAT_S * LIVENESS:
                self._drop_peer(identity, PeerState.LOST, "stopped answering")
            else:
                self._send(identity, "HEARTBEAT")
        live = {identity for identity, peer in self.peers.items() if peer.active}
        self.scheduler.give_up_unassignable(live)
        self._retarget_checks()
        # A peer that answers heartbeats but never finishes a batch (stuck, or stalling on purpose).
        typical = sorted(self._batch_seconds)[len(self._batch_seconds) // 2] if self._batch_seconds else 0.0
        for identity, batch_id in self.scheduler.overdue(now, max(STALL_MIN_S, 10 * typical)):
            log.warning("%s has held batch %d too long; giving it to another peer", self.peers[identity].name, batch_id)
            self.scheduler.fail(identity, batch_id)
        if self.watch is not None:
            self.watch()
        self.on_event("peers", [peer.snapshot(identity.hex(), now) for identity, peer in self.peers.items()])

    def _progress(self, now: float) -> None:
        done = len(self.results)
        new = done - len(self.spec.skip)
        elapsed = now - self.started
        rate = new / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else None
        self.on_event("progress", {"done": done, "total": self.total, "fps": rate, "eta_s": eta})

    # -- messages -------------------------------------------------------------------------------
    def _on_frames(self, frames) -> None:
        identity = frames[0].bytes
        address = client_key = ""
        try:
            address = frames[1].get("Peer-Address") or ""
            client_key = frames[1].get("User-Id") or ""  # the CurveZMQ key ZAP admitted (z85)
        except (zmq.ZMQError, IndexError, AttributeError):
            pass
        try:
            msg = proto.decode([f.bytes for f in frames[1:]])
            answer = wire.parse_result(msg["frames"], msg.parts[0]) if msg.type == "RESULT" else None
        except ProtocolError as exc:
            self._count_bad(identity, f"malformed message: {exc}")
            if identity not in self.peers and len(frames) > 1 and proto.peek_type(frames[1].bytes) == "HELLO":
                self._send(identity, "REJECT", reason=f"incompatible app: this requester runs {__version__} (protocol {PROTOCOL_VERSION})")
            return
        peer = self.peers.get(identity)
        if peer is not None:
            peer.last_heard = time.monotonic()
        if msg.type == "HELLO":
            self._on_hello(identity, address, client_key, msg)
            return
        if peer is None or not peer.active:
            if msg.type not in ("BYE", "HEARTBEAT"):
                self._send(identity, "REJECT", reason=f"{proto.NOT_JOINED}: say HELLO first")
            return
        if msg.type == "RESULT":
            self._on_result(identity, peer, msg, answer)
            return
        handler = {"READY": self._on_ready, "ERROR": self._on_error, "BYE": self._on_bye}.get(msg.type)
        if handler is None:
            if msg.type != "HEARTBEAT":
                self._count_bad(identity, f"unexpected {msg.type}")
            return
        handler(identity, peer, msg)

    def _on_hello(self, identity: bytes, address: str, client_key: str, msg) -> None:
        if identity in self.peers:  # joined already, or left, lost or quarantined: no second life
            self._count_bad(identity, "second HELLO")
            return
        host = address or "?"  # the join code was proved at admission: ZAP let only its key in
        machine = machine_key(msg["name"], host)
        if self._machine(machine).banned:  # every connection of a quarantined machine
            self._send(identity, "REJECT", reason="quarantined for this job")
            return
        # The teacher's own worker: its CurveZMQ key is the one the job made for it (ZAP checked it).
        trusted = bool(self.spec.local_key) and client_key == self.spec.local_key
        if not trusted and sum(p.active and p.machine == machine for p in self.peers.values()) >= MAX_CONNECTIONS_PER_MACHINE:
            self._send(identity, "REJECT", reason="too many connections from this computer")
            return
        peer = PeerRecord(name=msg["name"], address=host, cores=msg["cores"], trusted=trusted)
        self.peers[identity] = peer
        log.info("%s joined from %s with %d cores", peer.name, host, peer.cores)
        self.scheduler.set_workers(identity, min(peer.cores, proto.MAX_CREDIT))  # a claim of 256 cores buys no more than its credit could
        params = self.spec.params
        self._send(
            identity,
            "WELCOME",
            [self._roster_blob],
            job_id=self.spec.job_id,
            params=wire.params_fields(params),
            roster_ids=list(params.roster_ids),
            heartbeat_s=HEARTBEAT_S,
        )
        self._peer_event(identity)

    def _on_ready(self, identity, peer: PeerRecord, msg) -> None:
        peer.credit = min(proto.MAX_CREDIT, peer.credit + msg["credit"])

    def _on_result(self, identity, peer: PeerRecord, msg, answer: BatchAnswer) -> None:
        batch_id = msg["batch_id"]
        batch = self.scheduler.held_by(identity, batch_id)
        if batch is None:
            return  # a late duplicate (first result won) or a batch this peer was never given
        if [f["token"] for f in msg["frames"]] != batch.tokens:
            self._count_bad(identity, "RESULT frames do not match the batch")
            self.scheduler.fail(identity, batch_id)
            return
        answer = self._judge_answer(answer)
        if isinstance(answer, str):
            self.scheduler.fail(identity, batch_id)
            if answer.startswith("named"):  # an old roster, or a bug: not proof of a lie
                self._count_bad(identity, f"RESULT {answer}")
            else:
                self.lies_caught += 1
                self._quarantine(identity, f"it sent impossible results ({answer})")
            return
        if self.scheduler.complete(identity, batch_id, float(msg.get("busy_s", 0.0))) is None:
            return
        self._batch_seconds = [*self._batch_seconds[-49:], time.monotonic() - batch.assigned_at.get(identity, time.monotonic())]
        self._machine(peer.machine).results += 1
        if batch.check_of is not None:
            self._on_check_answer(identity, batch, answer)
            return
        self._store(identity, batch, answer, msg.parts[1:])
        peer.frames += len(batch.frames)
        peer.batches += 1
        peer.busy_s += float(msg.get("busy_s", 0.0))
        self._peer_event(identity)
        if not peer.trusted and should_check(self._check_secret, batch.id, self.spec.validation_share):
            self._schedule_check(batch, CheckRecord(batch.id, [(Answerer(peer.machine, False), identity, answer)]))

    def _judge_answer(self, answer: BatchAnswer) -> BatchAnswer | str:
        """The answer, or why it cannot be true: a name off the roster, impossible data (checks.py),
        names that do not follow from its own encodings."""
        if any(f.student_id is not None and f.student_id not in self._roster_ids for faces in answer.faces for f in faces):
            return "named a student who is not on the roster"
        params = self.spec.params
        return answer_problem(answer, self._frame_size) or claim_problem(answer, self._roster_matrix, list(params.roster_ids), params.tolerance) or answer

    def _store(self, identity: bytes, batch: Batch, answer: BatchAnswer, crops: list[bytes]) -> None:
        """Results as they come: kept in memory and shown at once; their evidence kept, their
        sightings counted (vouched, or queued for checking) and the frames saved to the checkpoint
        once the batch's seams are settled, which may name a face or take a name back (swarm/seams.py)."""
        self._done_by[batch.id] = (identity, batch.frames)
        peer = self.peers.get(identity)
        trusted = identity == LOCAL or (peer is not None and peer.trusted)
        source = SeamSource(identity, TRUSTED_MACHINE if identity == LOCAL else peer.machine, trusted)
        crops_left = iter(crops)
        for frame, faces, encodings in zip(batch.frames, answer.faces, answer.encodings):
            # Only unknown faces keep their encoding (to be clustered); known ones are settled.
            kept = tuple(None if face.student_id else enc.copy() for face, enc in zip(faces, encodings))
            result = FrameResult(frame["index"], frame["time_s"], tuple(faces), kept)
            self.results[result.index] = result
            self.on_event("frame", result)
        boxes = tuple([face.box for face in faces] for faces in answer.faces)
        self._remember_seats(answer.faces, source.machine)
        batch_names = BatchNames(tuple(frame["index"] for frame in batch.frames), boxes, tuple(answer.encodings), source)
        face_crops = tuple([next(crops_left, b"") for _ in faces] for faces in answer.faces)
        if sum(len(c) for frame in face_crops for c in frame) + sum(held.crop_bytes for held in self._held.values()) > MAX_HELD_CROP_BYTES:
            face_crops = tuple([b""] * len(faces) for faces in answer.faces)
        self._held[batch_names.indexes[0]] = HeldBatch(batch_names, batch.frames, batch.payloads, face_crops)
        self._seams_safely(lambda: self.seams.add(batch_names))

    def _seams_safely(self, step, save: bool = True) -> None:
        """Apply what a step of the seams settles. The answers behind it passed their checks; should
        the seams still fail, every held batch counts on its own names and the job goes on (no
        peer is to blame). save=False: counted for this run's report, not saved to the checkpoint
        (a stopped job's batches settled without a seam that had yet to come: a resumed run does
        them again beside their neighbours)."""
        try:
            settled = step()
        except Exception:
            log.exception("names across batch seams failed; the batches' own names stand")
            settled = [Settled(held.names, {}, {}) for held in list(self._held.values())]
        for one in settled:
            for attempt in (one, Settled(one.batch, {}, {})):
                try:
                    self._settle(attempt, save)
                    break
                except Exception:  # counted on its own names instead (a sighting counted twice counts once)
                    log.exception("settling frames %d-%d failed", one.batch.indexes[0], one.batch.indexes[-1])
            self._held.pop(one.batch.indexes[0], None)

    def _settle(self, settled: Settled, save: bool = True) -> None:
        """A batch whose seams are settled: the names they take back and give, then each face's
        evidence kept and each named face counted. A name is taken back only on the word of this
        computer or of the batch's own computer (a volunteer's batch must not unname another's
        faces); a name given counts as the teacher's computer's own only when every batch behind it
        is (a volunteer's word never counts unchecked)."""
        batch = settled.batch
        held = self._held.get(batch.indexes[0])
        if held is None:
            return  # counted already (the seams failed), or voided since (a liar's, being redone)
        changed = []
        for position, index in enumerate(batch.indexes):
            result = self.results.get(index)
            if result is None:
                continue
            faces, kept = list(result.faces), list(result.encodings)
            counts = [face.student_id is not None for face in faces]  # the answer's own names: counted below
            evidence_as: dict[int, object] = {}  # face -> the face its evidence crop is kept as, where not as stored
            for face_no, face in enumerate(faces):
                if tuple(face.box) != tuple(batch.boxes[position][face_no]):
                    continue
                back = settled.taken_back.get((index, face_no))
                if back is not None and face.student_id == back.student and any(
                        all(s.trusted or s.machine == held.source.machine for s in sources) for sources in back.by):
                    faces[face_no], counts[face_no] = replace(face, student_id=None), False
                    kept[face_no] = np.array(batch.encodings[position][face_no], np.float32)  # an unknown face again, to be grouped
            for face_no, name in sorted((key[1], name) for key, name in settled.names.items() if key[0] == index):
                face = faces[face_no] if face_no < len(faces) else None
                if face is None or face.student_id is not None or tuple(face.box) != tuple(batch.boxes[position][face_no]):
                    continue
                if any(other.student_id == name.student for other in faces):
                    continue  # one face a student in a frame: the answer's own name (taken within float slack) stands
                encoding = np.asarray(batch.encodings[position][face_no], np.float32)
                named = replace(face, student_id=name.student, distance=name.distance)
                faces[face_no], kept[face_no] = named, None  # named: no longer an unknown face to group
                copy = FrameCopy.of(index, held.frames[position], held.payloads[position])
                claim = self._count_seam_sighting(named, index, result.time_s, encoding, held.source, name.sources, copy)
                self._seam_given[(index, face_no)] = (name.sources, face, named, encoding, claim)
                if any(not s.trusted for s in name.sources):
                    evidence_as[face_no] = face  # a name a liar caught later takes back: its crop stays an unknown face's
            for face_no, (face, counted) in enumerate(zip(faces, counts)):
                encoding = np.asarray(batch.encodings[position][face_no], np.float32)
                crop = held.crops[position][face_no] if face_no < len(held.crops[position]) else b""
                self.evidence.keep(evidence_as.get(face_no, face), index, face_no, result.time_s, crop, encoding, held.source.identity)
                if counted:
                    self._count_sighting(face, index, result.time_s, encoding, held, position)
            if faces != list(result.faces):
                changed.append(FrameResult(index, result.time_s, tuple(faces), tuple(kept)))
        self._show(changed)
        if save:  # only now: a batch saved before its seams settled would resume with a name they take back
            saved = SavedBatch(batch.indexes, batch.boxes, batch.encodings, held.source.trusted)
            self._save([self.results[index] for index in batch.indexes if index in self.results], saved)

    def _count_sighting(self, face, index: int, time_s: float, encoding: np.ndarray, held: HeldBatch, position: int) -> None:
        """A face its batch's own answer named: vouched for when this computer computed it (and its
        descriptor offered to the unknown-face grouping), otherwise a claim to check."""
        source = held.source
        sighting = Sighting(face.student_id, self.ledger.window_of(time_s), index, face.box, source.identity, source.machine, encoding.tobytes())
        if source.trusted:
            self._vouch(sighting, face, time_s, encoding)
        else:
            self.ledger.claim(sighting, FrameCopy.of(index, held.frames[position], held.payloads[position]))

    def _vouch(self, sighting: Sighting, face, time_s: float, encoding: np.ndarray) -> None:
        """A sighting the teacher's computer computed: true without a check, and its descriptor
        offered to the unknown-face grouping."""
        self.ledger.vouch(sighting)
        self.evidence.keep_descriptor(face.student_id, time_s, encoding, face.distance, self.spec.params.tolerance)

    def _remember_seats(self, frames_faces, machine: tuple[str, str]) -> None:
        """Where faces were seen, for the batches handed out next (compute/tracking.py), and which
        machine's answer put each seat there (a liar's seats go when it is caught). Sure faces only
        (scoring the job's min_score): a seat also vouches for a weak detection there, and a weak
        one kept for its seat must not keep that seat alive (a coat pattern at a seat left empty)."""
        floor = self.spec.params.settings.min_score
        frames_boxes = [[face.box for face in faces if face.score >= floor] for faces in frames_faces]
        self._seats = remember_seats(self._seats, frames_boxes, MAX_SEATS)
        given = {tuple(int(v) for v in box) for boxes in frames_boxes for box in boxes}
        self._seat_from = {seat: machine if seat in given else self._seat_from.get(seat, machine) for seat in self._seats}

    def _show(self, changed: list[FrameResult]) -> None:
        """Frames whose stored result changed after it was stored (a seam's names, or their taking
        back): kept and shown like new ones."""
        for result in changed:
            self.results[result.index] = result
            self.on_event("frame", result)

    def _save(self, results: list[FrameResult], batch: SavedBatch | None = None) -> None:
        """Frames whose seams are settled, to the checkpoint. It is a safety copy for --resume: a
        checkpoint that cannot be written (a full disk) is said once and costs this run nothing."""
        if not results or self.result_sink is None:
            return
        try:
            self.result_sink(results, batch)
        except Exception as exc:
            if any(w.startswith(CHECKPOINT_UNWRITTEN) for w in self.warnings):
                return  # said already (a full disk fails every batch after)
            log.exception("the checkpoint could not be written")
            warning = f"{CHECKPOINT_UNWRITTEN} ({exc}): an interruption now could not be resumed; this report is complete."
            self.warnings.append(warning)
            self.on_event("warning", warning)

    def _take_back_seam_names(self, machine: tuple[str, str]) -> None:
        """A machine caught lying: the names a seam gave on its answer's word are unknown faces again
        (its own frames are voided and done again; these are its neighbours')."""
        changed = []
        for (index, face_no), (sources, unknown, named, encoding, claim) in list(self._seam_given.items()):
            result = self.results.get(index)
            if not any(source.machine == machine for source in sources) or result is None or result.faces[face_no:face_no + 1] != (named,):
                continue
            del self._seam_given[(index, face_no)]
            if claim is not None:
                self.ledger.withdraw(claim)  # filed in an honest face-owner's name, it would still count once checked
            faces, kept = list(result.faces), list(result.encodings)
            faces[face_no], kept[face_no] = unknown, encoding
            self.results[index] = FrameResult(index, result.time_s, tuple(faces), tuple(kept))  # a second face of the frame sees this one
            changed.append(self.results[index])
        self._show(changed)
        self._save(changed)

    def _count_seam_sighting(self, face, index: int, time_s: float, encoding: np.ndarray, own: SeamSource, sources: frozenset, copy) -> Sighting | None:
        """Vouch for a seam name every batch behind which is this computer's own, or file it as a
        claim to check; returns the claim filed (None: vouched, or not counted)."""
        sighting = Sighting(face.student_id, self.ledger.window_of(time_s), index, face.box, own.identity, own.machine, encoding.tobytes())
        untrusted = sorted((s for s in sources if not s.trusted), key=lambda s: (s.machine, s.identity))
        if not untrusted:
            self._vouch(sighting, face, time_s, encoding)
            return None
        # Whose word it is: the face's own batch's computer where that is a volunteer (a forged
        # descriptor there is caught as its lie); on this computer's own face, the volunteer whose
        # batch gave the name (the check there cannot fail, but a liar caught later takes it back).
        who = own if not own.trusted else untrusted[0]
        if self._machine(who.machine).banned:
            return None
        claim = replace(sighting, peer=who.identity, machine=who.machine)
        self.ledger.claim(claim, copy)
        return claim

    def verified_windows(self) -> frozenset[tuple[str, int]] | None:
        """(student id, window) pairs whose presence is verified; None when nothing could be
        verified on this computer (the report then says so and counts every sighting)."""
        return self.ledger.verified if self._verifying_sightings else None

    def integrity(self) -> dict:
        """The figures the report shows: what was checked, and who was caught."""
        volunteer_cpu = sum(p.busy_s for p in list(self.peers.values()) if not p.trusted)  # list(): one C call, safe from other threads
        return {
            "sightings_verified": self.ledger.sightings_verified,
            "windows_verified": len(self.ledger.verified),
            "lies_caught": self.lies_caught,
            "batches_checked": self.validation["checked"],
            "disagreements": self.validation["disagreements"],
            "quarantined": [{"name": name, "why": self.validation["why"].get(name, "")} for name in self.validation["quarantined"]],
            "verification_cpu_s": round(self.verify_cpu_s, 3),
            "volunteer_cpu_s": round(volunteer_cpu, 3),
            "verified": self._verifying_sightings,
        }

    # -- integrity --------------------------------------------------------------------------------
    def _init_integrity(self) -> None:
        spec = self.spec
        self.machines: dict[tuple[str, str], MachineRecord] = {}
        window_s = choose_window_s(spec.info.duration_s)
        self.ledger = SightingLedger(window_s, len(window_starts(spec.info.duration_s, window_s)))
        ids = list(spec.params.roster_ids)
        self._roster_matrix = matrix = np.asarray(spec.params.roster_encodings, np.float32).reshape(-1, 128)
        self._student_rows = {sid: matrix[[i for i, x in enumerate(ids) if x == sid]] for sid in set(ids)}
        self._frame_size = frame_size(spec)
        self._verifier = None  # the teacher's own checker process (swarm/workers.WorkerPool of one)
        self._verifier_starter: threading.Thread | None = None
        self._verifier_started = None  # the pool, handed over by the starter thread
        self._verifying_sightings = False
        self._verify_queue: deque[Sighting] = deque()
        self._local_batches: deque[tuple[str, Batch]] = deque()  # ("settle" | "rescue", batch)
        self._local_busy: tuple | None = None  # (token, what) the checker is working on
        self._local_tokens = itertools.count()
        self._local_since = 0.0
        self._gave_up: list[Batch] = []
        self._prior_frames: queue.Queue = queue.Queue(maxsize=8)  # resumed frames, read again to check their sightings
        self._prior_reader: threading.Thread | None = None
        self._random = random.SystemRandom()
        self.verify_cpu_s = 0.0
        self.unsettled = 0
        self.lies_caught = 0  # proven: a failed sighting, an impossible answer, a check lost to this computer
        self.local_batch_cpu_s = 0.0  # batches this computer did itself (settling, rescuing)
        self.validation = {"checked": 0, "disagreements": 0, "quarantined": [], "why": {}}
        # Resumed frames: no batch brings them again, but a batch redone beside a saved one gets that seam.
        saved = [BatchNames(b.indexes, b.boxes, b.encodings, resumed_source(b)) for b in self._prior_batches]
        self.seams = Seams(matrix, ids, spec.params.tolerance, self.total, absent=self.results, saved=saved)
        self._held: dict[int, HeldBatch] = {}  # first frame -> a stored batch whose seams are not settled yet
        self._seats: list[tuple[int, int, int, int]] = []  # where faces were seen, the latest last (compute/tracking.py)
        self._seat_from: dict[tuple[int, int, int, int], tuple[str, str]] = {}  # seat -> the machine whose answer put it there
        self._remember_seats([self.results[i].faces for i in sorted(self.results)], CHECKPOINT)  # resumed
        self._seam_given: dict[tuple[int, int], tuple] = {}  # (frame, face) a seam named -> (sources, the face unknown, named, its encoding, claim)

    def _machine_of(self, identity: bytes) -> tuple[str, str]:
        peer = self.peers.get(identity)
        return TRUSTED_MACHINE if identity == LOCAL else peer.machine if peer is not None else ("id", identity.hex())

    def _machine(self, key: tuple[str, str]) -> MachineRecord:
        return self.machines.setdefault(key, MachineRecord())

    def _start_verifier(self) -> None:
        """Start the checker process on a thread of its own: loading its models takes seconds, and
        meanwhile this loop must answer admissions (a volunteer gives up after 5 s) and heartbeats."""

        def start() -> None:
            try:
                from p2p_attendance.swarm.workers import WorkerPool

                pool = WorkerPool(1)
                params = self.spec.params
                pool.start_job(wire.params_fields(params), list(params.roster_ids), self._roster_blob)
                self._verifier_started = pool
            except Exception as exc:
                log.exception("cannot start this computer's checker")
                self.warnings.append(f"This computer could not start its checker ({exc}): sightings were not verified.")

        self._verifier_starter = threading.Thread(target=start, name="checker-start", daemon=True)
        self._verifier_starter.start()

    def _adopt_verifier(self) -> None:
        """Take over the checker once its starter thread is done (None where it failed)."""
        if self._verifier_starter is None or self._verifier_starter.is_alive():
            return
        self._verifier_starter = None
        self._verifier, self._verifier_started = self._verifier_started, None
        self._verifying_sightings = self._verifier is not None and self.spec.verify_sightings

    def _start_prior_reader(self) -> None:
        """Sightings resumed from the checkpoint are checked like any: their frames are read again."""
        indexes = sorted(i for i, r in self.results.items() if any(f.student_id for f in r.faces))
        if not (self.spec.verify_sightings and indexes):  # the checker may still be starting
            return

        def read() -> None:
            try:
                for frame in sampled_frames(self.spec, indexes):
                    if not self._put_while_open(self._prior_frames, frame_payload(frame, self.spec) + (frame.index,)):
                        return
            except Exception:
                log.exception("re-reading resumed frames to check them failed")

        self._prior_reader = threading.Thread(target=read, name="resume-reader", daemon=True)
        self._prior_reader.start()

    def _take_prior_frames(self) -> None:
        for _ in range(8):
            try:
                entry, payload, index = self._prior_frames.get_nowait()
            except queue.Empty:
                return
            result = self.results.get(index)
            for face in result.faces if result is not None else ():
                if face.student_id is not None:
                    sighting = Sighting(face.student_id, self.ledger.window_of(result.time_s), index, face.box, LOCAL, CHECKPOINT)
                    self.ledger.claim(sighting, FrameCopy.of(index, entry, payload))

    def _local_batch_pending(self) -> bool:
        """A batch every peer failed is still to be done on this computer (it left the scheduler);
        never while no checker runs (nothing would ever do it)."""
        return self._checker_available() and (bool(self._local_batches) or (self._local_busy is not None and self._local_busy[0][0] == "batch"))

    def _checker_available(self) -> bool:
        """Work for the checker may be queued: it runs, or is still starting."""
        return self._verifier is not None or self._verifier_starter is not None

    def _local_idle(self) -> bool:
        if self._verifier_starter is not None:
            return False  # still starting: what it will check is not done yet
        if self._verifier is None:
            return True
        if (self._prior_reader is not None and self._prior_reader.is_alive()) or not self._prior_frames.empty():
            return False
        return not (self._local_batches or self._local_busy or self._verify_queue or (self._verifying_sightings and self.ledger.waiting))

    def _pump_local(self) -> None:
        """Feed the checker process one piece of work at a time (never blocks: it only sends to an
        idle checker, which is waiting to read) and take in what it finished."""
        self._adopt_verifier()
        pool = self._verifier
        if pool is None:
            return
        for message in pool.poll():
            self._on_local(message)
        if self._verifier is None:
            return
        self._take_prior_frames()
        slot = pool.idle_slot()  # a ready one: a checker still loading its models takes nothing
        if slot is None:
            if not pool.alive():
                self._checker_died("it stopped")
            elif self._local_busy is not None and time.monotonic() - self._local_since > LOCAL_WORK_LIMIT_S:
                self._checker_died("it stopped answering")
            return
        self._local_since = time.monotonic()
        if self._verifying_sightings:
            self._verify_queue.extend(self.ledger.picks())
        if self._verify_queue:
            first = self._verify_queue.popleft()
            group = [first, *(s for s in self._verify_queue if s.frame_index == first.frame_index)]
            for sighting in group[1:]:
                self._verify_queue.remove(sighting)
            frame = self.ledger.frame(first.frame_index)
            token = ("verify", next(self._local_tokens))
            self._local_busy = (token, group)
            pool.submit_verify(slot, token, frame.entry, frame.payload, self._codec_for([frame.entry]), [list(s.box) for s in group])
            return
        if self._local_batches:
            purpose, batch = self._local_batches.popleft()
            token = ("batch", next(self._local_tokens))
            self._local_busy = (token, (purpose, batch))
            entries = [{"token": i, **({"keyframe": True} if f.get("keyframe") else {})} for i, f in enumerate(batch.frames)]
            pool.submit(slot, token, entries, batch.payloads, self._codec_for(batch.frames), self._seats_of(batch))

    def _codec_for(self, entries: list[dict]):
        if not any(e.get("keyframe") for e in entries):
            return None
        return (self.spec.info.codec, self.spec.info.extradata or None)

    def _on_local(self, message: BatchDone | Verified | WorkFailed) -> None:
        busy, self._local_busy = self._local_busy, None
        if busy is None or busy[0] != message.token:
            return
        if busy[0][0] == "verify":
            group = busy[1]
            if not isinstance(message, Verified):
                if "worker process died" in message.message:
                    self._checker_died(message.message)
                    return
                for sighting in group:  # an undecodable frame proves nothing
                    self.ledger.judged(sighting, Verdict.UNSURE)
                return
            found = np.frombuffer(message.encodings, np.float32).reshape(-1, 128)
            self.verify_cpu_s += float(message.cpu_s)
            for sighting, fresh in zip(group, found):
                sent = np.frombuffer(sighting.encoding, np.float32)
                rows = self._student_rows.get(sighting.student_id, np.zeros((0, 128)))
                verdict = judge_sighting(fresh, sent, rows, self.spec.params.tolerance)
                if not self.ledger.judged(sighting, verdict):
                    continue  # a seam name taken back while it was being checked
                result = self.results.get(sighting.frame_index)
                if verdict == Verdict.VERIFIED and result is not None:  # this computer's own descriptor, not the volunteer's
                    self.evidence.keep_descriptor(sighting.student_id, result.time_s, fresh, distance_to_student(fresh, rows), self.spec.params.tolerance)
                if verdict == Verdict.LIE and sighting.machine == CHECKPOINT:  # a lie from before the interruption
                    self._void_frames([sighting.frame_index])
                elif verdict == Verdict.LIE:
                    self.lies_caught += 1
                    self._quarantine_machine(sighting.machine, f"it claimed {sighting.student_id} in frame {sighting.frame_index}, "
                                             "where this computer found another face")
            return
        purpose, batch = busy[1]
        try:
            if isinstance(message, BatchDone):
                answer = self._judge_answer(wire.parse_result(message.frames, message.encodings))
            else:
                answer = f"failed: {message.message}"
        except ProtocolError as exc:  # our own worker's entries: a bug, which fails the batch like any
            answer = f"failed: {exc}"
        if isinstance(answer, str):
            if "worker process died" in answer:
                self._checker_died(answer)
            log.warning("this computer could not do batch %d either: %s", batch.id, answer)
            self.unsettled += purpose == "settle"
            self._checks.pop(batch.id, None)
            batch.payloads = []
            self._gave_up.append(batch)
            return
        self.local_batch_cpu_s += float(message.busy_s)
        if purpose == "settle":
            self._on_check_answer(LOCAL, batch, answer)
        else:
            self._store(LOCAL, batch, answer, message.crops)

    def _checker_died(self, why: str) -> None:
        log.error("this computer's checker died: %s", why)
        # Only our own bug or a lack of memory stops it (peers cannot reach it): count every
        # sighting from here on rather than mark present students absent, and say so.
        self.warnings.append(f"This computer's checker stopped ({why}): sightings were counted without being verified.")
        self._verifier.close()
        self._verifier = None
        self._verifying_sightings = False
        if self._local_busy is not None and self._local_busy[0][0] == "batch":
            self._gave_up.append(self._local_busy[1][1])
        self._local_busy = None
        self.unsettled += len(self._local_batches)
        self._gave_up.extend(batch for _, batch in self._local_batches)
        self._local_batches.clear()

    def _rescue_failed(self) -> None:
        """Batches every peer failed are done on this computer before they are given up."""
        for batch in self.scheduler.take_failed():
            if self._checker_available() and batch.payloads:
                self._local_batches.append(("settle" if batch.check_of is not None else "rescue", batch))
            else:
                self.unsettled += batch.check_of is not None
                batch.payloads = []
                self._gave_up.append(batch)

    def _schedule_check(self, batch: Batch, check: CheckRecord) -> None:
        """A copy of batch, reserved for a peer the requester picks on another machine."""
        copy = Batch(next(self.batch_ids), batch.frames, batch.payloads, check_of=check.original, seats=self._seats_of(batch))
        copy.failed_on = {who.machine for who, _, _ in check.answers}  # never back to a machine under test
        self._checks[copy.id] = check
        self._target_check(copy)

    def _target_check(self, copy: Batch) -> None:
        """The teacher's own worker first (its answer settles); otherwise one peer at random (not
        whoever happens to hold credit); nobody: this computer's checker does it."""
        candidates = [i for i, p in self.peers.items() if p.active and self._machine_of(i) not in copy.failed_on]
        trusted = {i for i in candidates if self.peers[i].trusted}
        if trusted or candidates:
            copy.only_for = trusted or {self._random.choice(candidates)}
            self.scheduler.add_first(copy)
        elif self._checker_available():
            self._local_batches.append(("settle", copy))
        else:
            self._checks.pop(copy.id, None)

    def _retarget_checks(self) -> None:
        """A check copy whose chosen peer left (or failed it) goes to another."""
        stranded = self.scheduler.take_pending(lambda b: b.only_for is not None
                                               and not any(self._is_active(i) and self.scheduler.may_take(i, b) for i in b.only_for))
        for batch in stranded:
            self._target_check(batch)

    def _is_active(self, identity: bytes) -> bool:
        """Whether this connection is a working peer; one already pruned (it left, idle) is not."""
        peer = self.peers.get(identity)
        return peer is not None and peer.active

    def _on_check_answer(self, identity: bytes, batch: Batch, answer: BatchAnswer) -> None:
        check = self._checks.pop(batch.id, None)
        if check is None:
            return
        peer = self.peers.get(identity)
        who = Answerer(TRUSTED_MACHINE, True) if identity == LOCAL else Answerer(peer.machine, peer.trusted)
        check.answers.append((who, identity, answer))
        self.validation["checked"] += 1
        liars, settled = settle([(w, a) for w, _, a in check.answers])
        frames_text = f"frames {batch.frames[0]['index']}-{batch.frames[-1]['index']}"
        if settled:
            for machine in liars:
                self.lies_caught += 1
                self._quarantine_machine(machine, f"its results for {frames_text} did not match this computer's")
            return
        if answers_agree(check.answers[0][2], answer):
            return
        # Two peers disagree and neither is the teacher's: this computer does the batch itself.
        self.validation["disagreements"] += 1
        log.warning("batch %d: two peers disagree; this computer settles it", check.original)
        self._checks[batch.id] = check
        self._local_batches.append(("settle", batch))

    def _quarantine(self, identity: bytes, why: str) -> None:
        self._quarantine_machine(self.peers[identity].machine, why)

    def _quarantine_machine(self, machine: tuple[str, str], why: str) -> None:
        """A proven lie: every connection of that machine is shut out, all its work voided and redone."""
        record = self._machine(machine)
        if record.banned:
            return
        if machine == TRUSTED_MACHINE:  # our own code disagreeing with itself: a bug, not a lie
            log.error("this computer's own results were contradicted (%s); kept", why)
            return
        record.banned, record.why = True, why
        connections = [i for i, p in self.peers.items() if p.machine == machine]
        name = self.peers[connections[0]].name if connections else machine[1]
        self.validation["quarantined"].append(name)
        self.validation["why"][name] = why
        self.on_event("warning", f"{name} was quarantined: {why}; all its work is being redone")
        for identity in connections:
            peer = self.peers[identity]
            peer.why = why
            if peer.state != PeerState.QUARANTINED:
                self._drop_peer(identity, PeerState.QUARANTINED, why)
                self._send(identity, "BYE", reason=f"quarantined: {why}")
        self.ledger.drop_machine(machine)
        self._seats = [seat for seat in self._seats if self._seat_from.get(seat) != machine]
        self.evidence.drop_peers(connections)
        self._take_back_seam_names(machine)
        for identity in connections:
            self.peers[identity].frames = 0
        self._void_frames(sorted(f["index"] for done_by, frames in self._done_by.values() if done_by in connections for f in frames))

    def _void_frames(self, redo: list[int]) -> None:
        """Results that cannot be believed: dropped (here and in the checkpoint) and done again."""
        for index in redo:
            self.results.pop(index, None)
        doubted = self.seams.forget(redo)
        voided = set(redo)
        self._seam_given = {key: given for key, given in self._seam_given.items() if key[0] not in voided}
        self._held = {first: held for first, held in self._held.items() if not voided & {f["index"] for f in held.frames}}
        if self.result_discard is not None and redo:
            self.result_discard(redo)  # or a resume would bring the lies back
        for saved in doubted:  # a batch an interrupted run saved, with a lie in it: the rest of its word goes too
            if not saved.source.trusted:
                self._take_back_seam_names(saved.source.machine)
        if redo:
            thread = threading.Thread(target=self._reread, args=(redo,), name="redo-reader", daemon=True)
            self._redo_threads.append(thread)
            thread.start()

    def _put_while_open(self, into: queue.Queue, item) -> bool:
        """Put into a bounded queue, waiting while it is full; False (not put) once the job is closed,
        so a reader thread never blocks for ever on a queue nobody empties any more."""
        while not self._closed.is_set():
            try:
                into.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _reread(self, indexes: list[int]) -> None:
        """Decode the frames a quarantined peer did, again, into fresh batches (blocks while the
        bounded queue is full: memory stays flat however much there is to redo)."""
        try:
            for batch in frame_batches(self.spec, encoded_frames(self.spec, indexes)):
                if not self._put_while_open(self._redo_queue, batch):
                    return  # the job ended: leaving the loop closes the reader threads
        except Exception as exc:
            log.exception("re-reading frames to redo failed")
            self.warnings.append(f"Some frames done by an excluded computer could not be read again ({exc}); they are missing.")

    def _on_error(self, identity, peer: PeerRecord, msg) -> None:
        batch = self.scheduler.held_by(identity, msg.get("batch_id", -1))
        if batch is None:
            self._count_bad(identity, "ERROR for a batch it does not hold")
            return
        log.warning("%s could not process batch %s: %s", peer.name, batch.id, msg["message"])
        self.scheduler.fail(identity, batch.id)
        record = self._machine(peer.machine)  # an ERROR counts against the machine that sent it
        record.errors += 1
        if not peer.trusted and record.errors >= MAX_ERRORS_PER_MACHINE and record.errors > 2 * record.results:
            self._quarantine(identity, f"it answered ERROR to {record.errors} batches and finished {record.results}")

    def _on_bye(self, identity, peer: PeerRecord, msg) -> None:
        self._drop_peer(identity, PeerState.LEFT, msg.get("reason", "left"))

    # -- the data socket's door (ZAP) ---------------------------------------------------------------
    def _serve_zap(self) -> None:
        """ZAP (RFC 27) for the data socket: a CurveZMQ client key gets in only after it completed
        the join-code exchange for this job. Served here, on the socket's owner thread."""
        for _ in range(100):
            try:
                request = self.zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            version, request_id, domain, mechanism = request[0], request[1], request[2], request[5]
            client = z85.encode(request[6]) if mechanism == b"CURVE" and len(request) > 6 and len(request[6]) == 32 else b""
            allowed = domain == b"data" and self.admission.admits(client)
            status = [b"200", b"OK", client, b""] if allowed else [b"400", b"not admitted", b"", b""]
            self.zap.send_multipart([version, request_id, *status])

    # -- helpers ----------------------------------------------------------------------------------
    def _drop_peer(self, identity: bytes, state: PeerState, why: str) -> None:
        peer = self.peers[identity]
        peer.state, peer.credit = state, 0
        returned = self.scheduler.release(identity)
        log.info("%s %s (%s); %d batches back in the queue", peer.name, state, why, returned)
        self._peer_event(identity)
        # Check answers are kept per machine, not per connection: a record without work can go.
        if state in (PeerState.LEFT, PeerState.LOST) and peer.frames == 0 and peer.batches == 0:
            self._departed_idle[identity] = None
            while len(self._departed_idle) > MAX_DEPARTED_IDLE_PEERS:
                forgotten = next(iter(self._departed_idle))
                del self._departed_idle[forgotten]
                gone = self.peers.get(forgotten)
                if gone is not None and not gone.active:
                    del self.peers[forgotten]
                    self._forget_machine(gone.machine)

    def _forget_machine(self, machine: tuple[str, str]) -> None:
        """A machine's record goes with its last connection, unless it holds something against it
        (a ban, errors) or work: join-and-vanish names must not grow the table without bound."""
        record = self.machines.get(machine)
        if record is None or record.banned or record.errors or record.results:
            return
        if not any(p.machine == machine for p in self.peers.values()):
            del self.machines[machine]

    def _count_bad(self, identity: bytes, why: str) -> None:
        self.dropped_messages += 1
        peer = self.peers.get(identity)
        if peer is not None:
            peer.bad_messages += 1
            if peer.bad_messages == MAX_BAD_MESSAGES and peer.active and not peer.trusted:
                self._quarantine(identity, f"it sent {MAX_BAD_MESSAGES} bad messages")
        if self.dropped_messages <= 20 or self.dropped_messages % 1000 == 0:
            log.warning("dropped message #%d from %s: %s", self.dropped_messages, peer.name if peer else "unknown peer", why)

    def _send(self, identity: bytes, msg_type: str, parts=None, **fields) -> None:
        try:
            message = proto.encode(msg_type, parts, **fields)
            self.socket.send_multipart([identity, *message], zmq.NOBLOCK)
            self.bytes_sent += sum(len(part) for part in message)  # before CurveZMQ: what the job costs the network
        except zmq.ZMQError:  # peer gone or its queue full: liveness will sort it out
            pass

    def _goodbye_all(self, reason: str) -> None:
        for identity, peer in self.peers.items():
            if peer.active:
                self._send(identity, "BYE", reason=reason)
                peer.state = PeerState.DONE
        time.sleep(0.1)  # let the BYEs leave before the socket closes

    def _peer_event(self, identity: bytes) -> None:
        self.on_event("peer", self.peers[identity].snapshot(identity.hex(), time.monotonic()))

    def peer_summary(self) -> list[dict]:
        return [{"name": p.name, "frames": p.frames} for p in self.peers.values() if p.frames > 0]

    def connect_line(self, host: str) -> str:
        return f"tcp://{host}:{self.port}/{self.server_key_hex}"
