import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from p2p_attendance.attendance.model import Face, FrameResult

pytest_plugins = ["pytester"]  # tests/test_slow_marker.py runs the collection hook on a throwaway tree

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO_ROOT.parent / "shared" / "faces"
needs_shared_faces = pytest.mark.skipif(not (SHARED_FACES / "enroll").is_dir(), reason="../shared/faces is not present")


# -- the slow marker, by location -------------------------------------------------------------------
# Modules whose tests start processes (the app, volunteers, Python children, mDNS peers in network
# namespaces) or run whole jobs on the demo material: every test in them is "slow", so
# `pytest -m "not slow"` is the quick run (README, Testing). A module not listed may still mark
# single tests slow with @pytest.mark.slow. tests/test_slow_marker.py keeps this list honest.
SLOW_MODULES = frozenset({
    "discovery/test_discovery.py",
    "discovery/test_discovery_flood.py",
    "gui/test_gui.py",
    "gui/test_gui_laptop.py",
    "gui/test_gui_screenshot.py",
    "gui/test_gui_signals.py",
    "gui/test_gui_take_load.py",
    "roster/test_join_codes.py",
    "roster/test_roster.py",
    "swarm/test_admission.py",
    "swarm/test_discovery_swarm.py",
    "swarm/test_guest.py",
    "swarm/test_requester_churn.py",
    "swarm/test_swarm.py",
    "swarm/test_validation.py",
    "swarm/test_volunteer_hardening.py",
    "test_checkpoint.py",
    "test_cli.py",
    "test_fileio.py",
    "test_lab_defaults.py",
    "tools/test_hall.py",
    "tools/test_selftest.py",
})
TESTS_DIR = Path(__file__).resolve().parent


def slow_module(path) -> bool:
    """Whether every test in the module at `path` is slow (SLOW_MODULES)."""
    try:
        return Path(path).resolve().relative_to(TESTS_DIR).as_posix() in SLOW_MODULES
    except ValueError:
        return False


def pytest_collection_modifyitems(config, items):
    """Mark every test of a SLOW_MODULES module slow."""
    for item in items:
        if slow_module(item.path):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Nothing a test does lands in the real user's data, config or log folders."""
    home = tmp_path_factory.mktemp("user")
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        folder = home / var.lower()
        folder.mkdir()
        monkeypatch.setenv(var, str(folder))
    # mDNS in tests (and in every process they start) stays on loopback, never the real LAN.
    monkeypatch.setenv("P2P_ATTENDANCE_MDNS_INTERFACES", "127.0.0.1")
    yield


@pytest.fixture(scope="session")
def engine():
    from p2p_attendance.compute.engine import FaceEngine

    return FaceEngine()


@pytest.fixture(scope="session")
def sample_faces():
    from p2p_attendance.compute.video import read_image_rgb
    from p2p_attendance.tools.demo import astronaut_path, grace_hopper_path

    return {"astronaut": read_image_rgb(astronaut_path()), "grace": read_image_rgb(grace_hopper_path())}


@pytest.fixture(scope="session")
def demo_material(tmp_path_factory, engine):
    """A 20-second composed class (two real faces, one absentee, one stranger) and its photos."""
    from p2p_attendance.tools.demo import build_demo

    return build_demo(tmp_path_factory.mktemp("demo"), engine, duration_s=20)


def app_command():
    return [sys.executable, "-m", "p2p_attendance"]


def subprocess_env(tmp_path):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def child_env() -> dict:
    """Environment for a Python child that must import this checkout (discovery tests); the
    child chooses its mDNS interfaces itself."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("P2P_ATTENDANCE_MDNS_INTERFACES", None)
    return env


def admitted_dealer(line, context, code):
    """A raw DEALER on a job's data socket, after admission with `code` (tests' own peers)."""
    import zmq

    from p2p_attendance.swarm.security import client_socket_options, split_connect
    from p2p_attendance.swarm.volunteer import JobTarget, admit

    endpoint, key = split_connect(line)
    keypair = zmq.curve_keypair()
    data_endpoint = admit(JobTarget(endpoint, key, code), keypair)
    sock = context.socket(zmq.DEALER)
    client_socket_options(sock, key, keypair)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(data_endpoint)
    return sock


class AdmissionDoor(threading.Thread):
    """The requester's side of admission for a test that plays the requester itself: a loopback
    TCP port where a real volunteer proves `code` by SPAKE2 (security.RequesterPake, the
    requester's own exchange) and is told `data_port`; one connection after another until close().
    No attempt budget: the volunteer it serves is the test's own."""

    def __init__(self, code: str, server_key: bytes, data_port: int):
        super().__init__(daemon=True)
        self.code, self.server_key, self.data_port = code, server_key, data_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.admitted = 0
        self._closed = threading.Event()
        self.start()

    def run(self):
        while not self._closed.is_set():
            try:
                conn, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                try:
                    self._admit(conn)
                except (OSError, ValueError):  # a broken or slow exchange: that volunteer tries again
                    pass

    def _admit(self, conn) -> None:
        from zmq.utils import z85

        from p2p_attendance.swarm import protocol as proto
        from p2p_attendance.swarm.security import RequesterPake

        def reply(msg_type, parts=None, **fields):
            conn.sendall(proto.pack_admission(proto.encode(msg_type, parts, **fields)))

        conn.settimeout(5)
        reader, pake = proto.AdmissionReader(), None
        while data := conn.recv(proto.MAX_ADMISSION_BYTES):
            for frames in reader.feed(data):
                msg = proto.decode(frames)
                if msg.type == "PAKE" and pake is None:
                    pake = RequesterPake(self.code, self.server_key, z85.encode(msg.parts[0]), msg.parts[1])
                    reply("PAKE_REPLY", [pake.reply])
                elif msg.type == "CONFIRM" and pake is not None and pake.volunteer_proved(msg.parts[0]):
                    reply("ADMIT", [pake.admit_mac(self.data_port)], data_port=self.data_port)
                    self.admitted += 1
                    return
                else:
                    reply("REJECT", reason="wrong join code")
                    return

    def close(self) -> None:
        self._closed.set()
        self.join(5)
        self.server.close()


class EventLoopProbe:
    """Beats every 10 ms on the GUI thread: the gaps between beats say how long the event loop
    was kept from answering. Shared test machines preempt any process now and then, so a test
    reads the 95th percentile (did the screen keep up all along?) beside the worst gap."""

    def __init__(self):
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.gaps: list[int] = []
        self._clock = QElapsedTimer()
        self._clock.start()
        self._last = 0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._beat)

    def _beat(self) -> None:
        now = self._clock.elapsed()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self._last = self._clock.elapsed()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def latency_ms(self) -> tuple[int, int]:
        """(95th percentile, worst) of the delays past the beat's own interval."""
        ordered = sorted(self.gaps)
        return ordered[int(len(ordered) * 0.95)] - self.timer.interval(), ordered[-1] - self.timer.interval()


def tiny_video(path):
    """A 2-second 64x64 MPEG-4 video of flat grey frames: a job with no faces, fast to run."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 10, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# -- a requester job on loopback (swarm tests) --------------------------------------------------
CODE = "424242"  # the join code of RunningJob's jobs


@pytest.fixture
def demo_roster(demo_material, engine):
    """The demo class enrolled from demo_material's photos."""
    from p2p_attendance.roster.enroll import enroll_folder

    return enroll_folder(demo_material.photos_dir, "Demo class", lambda: engine).roster


class RunningJob:
    """A requester job on loopback in a thread, with volunteer processes the test starts."""

    def __init__(self, video, roster, **options):
        from p2p_attendance.job import AttendanceJob, JobOptions

        opts = dict(workers=0, listen="tcp://127.0.0.1:0", join_code=CODE, persistent_key=False, sample_fps=4.0, discovery=False)
        opts.update(options)
        self.events = []
        self.job = AttendanceJob(video, roster, JobOptions(**opts), on_event=lambda k, p: self.events.append((k, p)))
        self.stop = threading.Event()
        self.report = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.processes = []

    def _run(self):
        self.report = self.job.run(self.stop)

    def start(self):
        self.thread.start()
        return self

    @property
    def line(self):
        return self.job.requester.connect_line("127.0.0.1")

    def admitted_dealer(self, context, code=CODE):
        return admitted_dealer(self.line, context, code)

    def volunteer(self, name, code=CODE, cores=1):
        command = [sys.executable, "-m", "p2p_attendance", "volunteer", "--connect", self.line, "--join-code", code,
                   "--cores", str(cores), "--name", name, "--single-job", "--no-discovery", "--quiet"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.processes.append(process)
        return process

    def frames_done(self):
        return len(self.job.requester.results)

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def finish(self, timeout=240):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "job did not finish"
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        return self.report

    def close(self):
        self.stop.set()
        self.thread.join(10)
        for process in self.processes:
            if process.poll() is None:
                process.kill()


def statuses(report):
    """Each student's status by id."""
    return {s.id: s.status for s in report.students}


# -- one lecture of a class with no workers (join-code tests) -----------------------------------
LECTURE_CLASS = "Physics 1"  # the class of Lecture's jobs


class Lecture:
    """One job of the class, with no workers: it waits for helpers until stopped."""

    def __init__(self, video, **options):
        from p2p_attendance.job import AttendanceJob, JobOptions
        from p2p_attendance.roster.store import ClassRoster

        opts = dict(workers=0, listen="tcp://127.0.0.1:0", persistent_key=False, discovery=False, checkpoint=False, sample_fps=1.0)
        opts.update(options)
        self.job = AttendanceJob(video, ClassRoster(LECTURE_CLASS, []), JobOptions(**opts))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.job.run, args=(self.stop,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()

    def guess(self, code):
        """'admitted', 'wrong', or ('wait', seconds) when the budget is spent."""
        import zmq

        from p2p_attendance.swarm.security import split_connect
        from p2p_attendance.swarm.volunteer import AdmissionRefused, JobTarget, admit

        endpoint, key = split_connect(self.job.requester.connect_line("127.0.0.1"))
        try:
            admit(JobTarget(endpoint, key, code), zmq.curve_keypair())
            return "admitted"
        except AdmissionRefused as exc:
            return ("wait", exc.retry_after_s) if exc.retry_after_s else "wrong"


def wrong_code(code):
    """A code of the same length that is not `code`."""
    return f"{(int(code) + 1) % 10**len(code):0{len(code)}d}"


# -- a report with every kind of row (report tests) ---------------------------------------------
def make_report():
    """A report with every kind of row and field the writers handle (report tests)."""
    from p2p_attendance.attendance.model import (
        ABSENT,
        PRESENT,
        AttendanceReport,
        IntegrityInfo,
        JobInfo,
        PeerWork,
        Quarantined,
        StudentAttendance,
        UnknownPerson,
    )

    # 6 windows of 60 s; window 3 (3:00) saw nobody at all.
    observed = [True, True, True, False, True, True]
    students = [
        StudentAttendance(
            id="s001", name="Zoë Müller", status=PRESENT, presence=0.8,
            first_seen_s=12.3, last_seen_s=3725.0, frames_seen=42,
            windows_seen=[True, True, False, False, True, True], best_distance=0.41,
        ),
        StudentAttendance(
            id="s002", name="Bob Lee", status=ABSENT, presence=0.2,
            first_seen_s=61.5, last_seen_s=70.0, frames_seen=3,
            windows_seen=[False, True, False, False, False, False],
        ),
        # Rule says absent (never seen) but the teacher marked her present.
        StudentAttendance(
            id="s003", name="Chloé Durand", status=PRESENT, presence=0.0,
            first_seen_s=None, last_seen_s=None, frames_seen=0,
            windows_seen=[False] * 6, manual=True,
        ),
    ]
    unknown = [
        UnknownPerson(label="Unknown 1", frames_seen=5, first_seen_s=125.0, last_seen_s=140.2,
                      windows_seen=[False, False, True, False, False, False]),
    ]
    job = JobInfo(
        video="/videos/lecture 3.mp4", class_name="Physics 101", frames_total=360,
        frames_processed=300, sample_fps=1.0, elapsed_s=95.4, duration_s=3730.0, tolerance=0.55,
        started_at="2024-05-02T09:15:00+02:00",
        peers=[PeerWork(name="teacher-laptop", frames=200), PeerWork(name="lab-pc-3", frames=100)],
        frames_from_checkpoint=60, warnings=["2 frames could not be decoded"],
        integrity=IntegrityInfo(sightings_verified=41, lies_caught=2, batches_checked=3,
                                quarantined=[Quarantined("lab-pc-9", "it claimed s1 in frame 12, where this computer found another face")],
                                verification_cpu_s=0.8, volunteer_cpu_s=61.0),
    )
    return AttendanceReport(
        students=students, unknown_faces=unknown, window_s=60.0,
        window_starts_s=[0.0, 60.0, 120.0, 180.0, 240.0, 300.0], windows_observed=observed,
        presence_threshold=0.5, job=job,
    )


# -- unknown faces for the evidence and review tests ---------------------------------------------
def plane_at(x: float, y: float):
    """A descriptor at (x, y) in a plane of the descriptor space: distances are plane distances."""
    v = np.zeros(128, np.float32)
    v[:2] = (x, y)
    return v


def person(seed):
    """A random unit face descriptor of one made-up person."""
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def near(base, seed, spread=0.05):
    """Another sighting of `base`: a little noise."""
    return (base + np.random.default_rng(seed).normal(scale=spread / np.sqrt(128), size=128)).astype(np.float32)


def between(a, toward, to_both, gap, seed):
    """(b, x): b is `gap` from a (toward `toward`); x is `to_both` from a and from b alike (a face
    two enrolled students are equally near: ambiguous)."""
    b = a + (toward - a) * gap / np.linalg.norm(toward - a)
    middle = (a + b) / 2
    lift = person(seed) - middle
    lift -= (lift @ (b - a)) / ((b - a) @ (b - a)) * (b - a)  # orthogonal to the a-b line: as far from both
    return b.astype(np.float32), (middle + lift / np.linalg.norm(lift) * np.sqrt(to_both ** 2 - (gap / 2) ** 2)).astype(np.float32)


def unknown_frames(appearances):
    """appearances: {seed: [frame index, ...]} -> FrameResults (1 s apart) with those strangers."""
    by_frame = {}
    for seed, indexes in appearances.items():
        for i in indexes:
            by_frame.setdefault(i, []).append(near(person(seed), seed * 1000 + i))
    return [
        FrameResult(i, float(i), tuple(Face((0, 0, 10, 10), None, 0.9) for _ in encs), tuple(tuple(map(float, e)) for e in encs))
        for i, encs in sorted(by_frame.items())
    ]


def feed(keeper, frames, peer=b"p"):
    """Keep every face of `frames` in the EvidenceKeeper as if `peer` had sent it."""
    for frame in frames:
        for position, (face, enc) in enumerate(zip(frame.faces, frame.encodings)):
            keeper.keep(face, frame.index, position, frame.time_s, f"jpeg {frame.index}/{position}".encode(), np.asarray(enc, np.float32), peer)


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """A test that runs `cli.main` gets the CLI's logging set up on the root logger, with a handler on
    that test's captured stderr; later tests must not log into a closed capture."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


# -- videos --------------------------------------------------------------------------------------
def make_h264(path, frames=240, fps=30, gop=30, b_frames=0, size=(192, 128), encoder="libx264", options=None):
    """An H.264 video like a phone's (gop = fps, no B-frames) or a screen recorder's (long gop,
    B-frames reordered): a moving bar and sensor noise, so every frame differs."""
    import av

    container = av.open(str(path), "w")
    stream = container.add_stream(encoder, rate=fps)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    stream.codec_context.gop_size = gop
    defaults = {"bf": str(b_frames), "preset": "veryfast", "keyint_min": str(gop), "sc_threshold": "0"}
    stream.codec_context.options = {**defaults, **(options or {})}
    rng = np.random.default_rng(1)
    for n in range(frames):
        image = np.full((size[1], size[0], 3), 90, np.uint8)
        image[:, (n * 3) % size[0] :][:, :8] = 250
        image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(autouse=True)
def _engine_settings_restored(request):
    """The session's FaceEngine is shared: a test that starts a job on it (BatchProcessor.start_job
    sets engine.settings, e.g. upsample 2) must not change how later tests enroll and detect."""
    if "engine" not in request.fixturenames:
        yield
        return
    engine = request.getfixturevalue("engine")
    settings = engine.settings
    yield
    engine.settings = settings


def never_ready_worker(conn, descriptor, memory_limit):
    """A worker process that never says it is ready (a hung model load): WorkerPool(worker_main=...)."""
    import time

    time.sleep(60)
