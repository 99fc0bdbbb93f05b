"""One attendance job, start to report: the piece the CLI and the GUI both drive.

The requester's own cores work through the same protocol as everyone else's: a local volunteer
process connects over loopback with the join code, so there is one code path, and
`workers=0` makes a pure coordinator.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from p2p_attendance import paths
from p2p_attendance.attendance.clustering import EnrolledFaces, UnknownGroup, group_unknown_faces
from p2p_attendance.attendance.evidence import EvidenceSnapshot
from p2p_attendance.attendance.model import AttendanceReport, IntegrityInfo, JobInfo, PeerWork, Quarantined
from p2p_attendance.attendance.tally import DEFAULT_PRESENCE_THRESHOLD, tally
from p2p_attendance.checkpoint import Checkpoint, JobIdentity, checkpoint_path, roster_hash
from p2p_attendance.compute.batch import JobParams
from p2p_attendance.compute.engine import DetectionSettings
from p2p_attendance.compute.matching import DEFAULT_TOLERANCE
from p2p_attendance.compute.video import DEFAULT_SAMPLE_FPS, probe_video, video_fingerprint
from p2p_attendance.host import logical_cores
from p2p_attendance.roster.join_codes import AttemptBudgetWriter, class_join_code, load_attempt_budget, new_join_code
from p2p_attendance.roster.store import ClassRoster
from p2p_attendance.swarm.checks import DEFAULT_SHARE
from p2p_attendance.swarm.requester import JobSpec, Requester
from p2p_attendance.swarm.security import key_fingerprint, load_or_create_identity
from p2p_attendance.swarm.wire import params_fields

log = logging.getLogger(__name__)

JOIN_CODE_ENV = "P2P_ATTENDANCE_JOIN_CODE"
LOCAL_KEY_ENV = "P2P_ATTENDANCE_LOCAL_WORKER_KEY"  # the secret CurveZMQ key of the teacher's own worker


def default_workers() -> int:
    """Local worker processes by default: every logical core but one, at least one."""
    return max(1, logical_cores() - 1)


def app_command() -> list[str]:
    """How to start another copy of this app (works from source and from the PyInstaller bundle)."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "p2p_attendance"]


def spawn_local_volunteer(connect_line: str, join_code: str, cores: int, name: str, secret_key: bytes = b"") -> subprocess.Popen:
    """The teacher's own worker. With `secret_key` (the job made it) the requester trusts it."""
    env = dict(os.environ, **{JOIN_CODE_ENV: join_code, LOCAL_KEY_ENV: secret_key.decode("ascii")})  # not on the command line: ps shows that
    command = [*app_command(), "volunteer", "--connect", connect_line, "--cores", str(cores), "--name", name, "--single-job", "--no-discovery", "--quiet"]
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)


@dataclass
class JobOptions:
    """The settings of one attendance job, as the CLI and the GUI pass them to AttendanceJob."""

    sample_fps: float = DEFAULT_SAMPLE_FPS
    tolerance: float = DEFAULT_TOLERANCE
    presence_threshold: float = DEFAULT_PRESENCE_THRESHOLD
    workers: int = field(default_factory=default_workers)
    listen: str = "tcp://0.0.0.0:0"
    join_code: str | None = None
    open_job: bool = False
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    # 8 sampled frames: one full search per batch pays for seven cheap ones (compute/tracking.py),
    # and a batch is still only seconds of work when the tail is re-issued.
    batch_size: int = 8
    persistent_key: bool = True  # the teacher's stable identity; off for throwaway keys
    discovery: bool = True  # advertise the job over mDNS
    checkpoint: bool = True  # store results as their batches settle (crash-safe); deleted when the job ends
    resume: bool = False  # continue from the checkpoint of an interrupted run
    validation_share: float = DEFAULT_SHARE  # share of batches re-done by another peer and compared
    mdns_interfaces: list[str] | None = None
    keyframes: bool = True  # sampled H.264/HEVC keyframes travel as they are (not re-encoded as JPEG)


class AttendanceJob:
    """Owns one job: the requester (on the calling thread), the local volunteer, the report.

    run() blocks on the job's thread. The GUI, on another thread, uses only the facade below
    (connect_line ... unknown_groups): immutable values or snapshots, never the requester itself.
    """

    def __init__(self, video: str | os.PathLike, roster: ClassRoster, options: JobOptions | None = None, on_event=None):
        self.video = str(video)
        self.roster = roster
        self.options = options or JobOptions()
        self.on_event = on_event or (lambda kind, payload: None)
        self.info = probe_video(self.video)  # raises VideoError with a teacher-readable message
        # The class's own code, the same lecture after lecture (roster/join_codes.py), with its
        # budget of wrong guesses; a code given for this job only (--join-code) gets a fresh budget.
        self.budget_writer = None
        attempt_budget = None
        if self.options.join_code:
            self.join_code = self.options.join_code
        elif self.options.open_job:
            self.join_code = new_join_code()  # not asked for; only the teacher's own worker uses it
        else:
            self.join_code = class_join_code(roster.name)
            attempt_budget = load_attempt_budget(roster.name, self.join_code)
            self.budget_writer = AttemptBudgetWriter(roster.name, self.join_code)
        self._attempt_budget = attempt_budget
        self._local_keypair = zmq.curve_keypair()  # our own worker's key: only it learns the secret half
        ids, matrix = roster.matrix()
        params = JobParams(ids, matrix, self.options.tolerance, self.options.detection)
        self._enrolled = EnrolledFaces.of(ids, matrix, self.options.tolerance)  # tells unsure groups from strangers
        self.spec = JobSpec(
            info=self.info,
            sample_fps=self.options.sample_fps,
            params=params,
            join_code=self.join_code,
            open_job=self.options.open_job,
            batch_size=self.options.batch_size,
            validation_share=self.options.validation_share,
            keyframes=self.options.keyframes,
            local_key=self._local_keypair[0].decode("ascii"),
        )
        self.checkpoint = None
        prior: dict = {}
        prior_batches: list = []
        if self.options.checkpoint or self.options.resume:
            identity = JobIdentity(
                video_fingerprint(self.video),
                roster_hash(ids, matrix),
                json.dumps({"sample_fps": self.options.sample_fps, **params_fields(params)}, sort_keys=True),
            )
            # Raises CheckpointMismatch when resuming with a changed video, roster or settings.
            self.checkpoint = Checkpoint(
                checkpoint_path(self.video, roster.name),
                identity,
                resume=self.options.resume,
                label={"video_path": os.path.abspath(self.video), "class_name": roster.name},
            )
            prior = self.checkpoint.load() if self.options.resume else {}
            prior_batches = self.checkpoint.batches_beside_gaps() if self.options.resume else []
            self.spec.skip = frozenset(prior)
        keypair = load_or_create_identity(paths.data_dir() / "identity") if self.options.persistent_key else None
        try:
            self.requester = self._make_requester(keypair, prior, prior_batches)
        except BaseException:
            if self.checkpoint is not None:
                self.checkpoint.close()
            if self.budget_writer is not None:
                self.budget_writer.close()
            raise
        self.frames_from_checkpoint = len(prior)
        self._prior = dict(prior)  # FrameResults are frozen: a copy of the dict is a snapshot
        self._unknown_groups: tuple[UnknownGroup, ...] = ()
        self.local_volunteer: subprocess.Popen | None = None
        self._told_local_gone = False
        self.advertiser = None  # a BackgroundAdvertiser while run() advertises the job
        self.started_at = dt.datetime.now().astimezone()
        self.elapsed_s = 0.0
        self.finished = False

    def _make_requester(self, keypair, prior, prior_batches) -> Requester:
        return Requester(
            self.spec,
            self.options.listen,
            on_event=self.on_event,
            keypair=keypair,
            result_sink=self.checkpoint.add if self.checkpoint else None,
            result_discard=self.checkpoint.discard if self.checkpoint else None,
            prior_results=prior,
            prior_batches=prior_batches,
            watch=self._check_local_volunteer,
            attempt_budget=self._attempt_budget,
            on_attempt_budget=self.budget_writer.offer if self.budget_writer else None,
        )

    # -- the facade other threads use (the GUI): immutable values and snapshots -------------------
    def connect_line(self, host: str) -> str:
        """The `--connect` line for helpers that reach this computer at host."""
        return self.requester.connect_line(host)

    def key_fingerprint(self) -> str:
        """This computer's key as the helpers' screens show it."""
        return key_fingerprint(self.requester.public_key)

    @property
    def total_frames(self) -> int:
        """Sampled frames to look at (fewer at the end when the video could not be read to its end)."""
        return self.requester.total

    def evidence_snapshot(self) -> EvidenceSnapshot:
        """The face crops kept so far (attendance/evidence.py), safe to read on any thread."""
        return self.requester.evidence.snapshot()

    def prior_frames(self) -> dict:
        """The results taken over from the checkpoint when resuming (frame index -> FrameResult)."""
        return dict(self._prior)

    def unknown_groups(self) -> tuple[UnknownGroup, ...]:
        """The unknown people of the latest report(), the same groups its unknown_faces counts."""
        return self._unknown_groups

    def enrolled_faces(self) -> EnrolledFaces:
        """The roster's descriptors and tolerance (read-only): the unknown-face grouping's roster."""
        return self._enrolled

    def close(self) -> None:
        """Release a job whose run() never started: its ports, checkpoint (kept) and code budget."""
        self.requester.close()
        if self.checkpoint is not None:
            self.checkpoint.close()
        self._close_budget()

    def _close_budget(self) -> None:
        """Save what is left of the class's budget of wrong join codes, as the admission door ends it."""
        if self.budget_writer is not None:
            self.budget_writer.close(self.requester.admission.limiter.state(time.monotonic(), time.time()))

    @property
    def loopback_line(self) -> str:
        return self.connect_line("127.0.0.1")

    def run(self, stop: threading.Event | None = None) -> AttendanceReport:
        started = time.monotonic()
        if self.options.discovery:
            self._advertise()  # registering takes ~2 s of name probing: the job starts meanwhile
        if self.options.workers > 0:
            self.local_volunteer = spawn_local_volunteer(self.loopback_line, self.join_code, self.options.workers, "this computer", self._local_keypair[1])
        try:
            self.finished = self.requester.run(stop)
        finally:
            self.elapsed_s = time.monotonic() - started
            if self.checkpoint is not None:
                self.checkpoint.close()  # deleted by discard_checkpoint(), once the results are safe
            if self.advertiser is not None:
                self.advertiser.close(wait=5)  # withdraws the job at once (goodbye packets)
            self._stop_local_volunteer()
            self._close_budget()
        return self.report()

    def discard_checkpoint(self) -> None:
        """Delete a finished job's saved progress. Only once its results are safe elsewhere (every
        report written, or the report held by the GUI): a report writer that fails after the
        checkpoint is gone would lose the whole job."""
        if self.checkpoint is not None and self.finished:
            self.checkpoint.close(delete=True)

    def _check_local_volunteer(self) -> None:
        process = self.local_volunteer
        if process is not None and process.poll() is not None and not self._told_local_gone:
            self._told_local_gone = True
            log.error("the local volunteer exited with status %s", process.returncode)
            self.on_event("warning", f"This computer's own helper stopped (exit {process.returncode}); see the log. Other computers can still finish the job.")

    def _advertise(self) -> None:
        from p2p_attendance.discovery import BackgroundAdvertiser, resolve_interfaces

        try:
            interfaces = resolve_interfaces(self.options.mdns_interfaces)
        except ValueError as exc:
            self._not_advertised(exc)
            return
        self.advertiser = BackgroundAdvertiser(
            None, max(1, self.options.workers), interfaces, on_error=self._not_advertised, **self.advert_fields()
        )

    def advert_fields(self) -> dict:
        """What this job's mDNS advert says (the job's own advert, or the GUI window's copy)."""
        return {
            "state": "requesting",
            "port": self.requester.port,
            "job_id": self.spec.job_id,
            "server_key": self.requester.public_key.decode("ascii"),
            "open_job": self.options.open_job,
            "class_name": self.roster.name,
        }

    def _not_advertised(self, exc: Exception) -> None:
        # mDNS blocked or no interface: volunteers can still --connect
        log.warning("cannot advertise the job over mDNS: %s", exc)
        self.on_event("warning", f"the job is not visible on the network (mDNS: {exc}); volunteers can use the --connect line")

    def report(self, presence_threshold: float | None = None) -> AttendanceReport:
        """The report for what has been processed so far (also mid-job, for live tables)."""
        threshold = self.options.presence_threshold if presence_threshold is None else presence_threshold
        frames = list(self.requester.results.values())
        # once: the report, the strip and the review show these (with the students' kept descriptors, as the strip's own grouping)
        groups = group_unknown_faces(frames, descriptors=self.requester.evidence.snapshot().descriptors, enrolled=self._enrolled)
        students, unknowns, starts, observed = tally(
            frames, self.roster.as_students(), self.info.duration_s, threshold=threshold,
            verified=self.requester.verified_windows(), unknown_groups=groups,
        )
        self._unknown_groups = groups
        figures = self.requester.integrity()
        job = JobInfo(
            video=os.path.basename(self.video),
            class_name=self.roster.name,
            frames_total=self.requester.total,
            frames_processed=len(self.requester.results),
            sample_fps=self.options.sample_fps,
            elapsed_s=round(self.elapsed_s, 1),
            duration_s=round(self.info.duration_s, 1),
            tolerance=self.options.tolerance,
            started_at=self.started_at.isoformat(timespec="seconds"),
            peers=[PeerWork(p["name"], p["frames"]) for p in self.requester.peer_summary()],
            frames_from_checkpoint=self.frames_from_checkpoint,
            warnings=list(self.requester.warnings),
            integrity=IntegrityInfo(
                sightings_verified=figures["sightings_verified"],
                lies_caught=figures["lies_caught"],
                batches_checked=figures["batches_checked"],
                quarantined=[Quarantined(q["name"], q["why"]) for q in figures["quarantined"]],
                verification_cpu_s=figures["verification_cpu_s"],
                volunteer_cpu_s=figures["volunteer_cpu_s"],
                verified=figures["verified"],
            ),
        )
        window_s = starts[1] - starts[0] if len(starts) > 1 else self.info.duration_s
        return AttendanceReport(students, unknowns, window_s, starts, observed, threshold, job)

    def _stop_local_volunteer(self) -> None:
        process = self.local_volunteer
        if process is None:
            return
        try:
            process.wait(timeout=5)  # it leaves by itself on the requester's BYE
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


def roster_for_run(class_name: str | None, roster_folder: str | None, engine_factory) -> tuple[ClassRoster, list]:
    """--class NAME loads an enrolled class; --roster PHOTOS enrolls on the fly (cached by hash)."""
    from p2p_attendance.roster.enroll import enroll_folder
    from p2p_attendance.roster.store import load_class

    if roster_folder:
        name = class_name or Path(roster_folder).resolve().name
        result = enroll_folder(roster_folder, name, engine_factory)
        return result.roster, result.problems
    return load_class(class_name), []
