"""`p2p-attendance bench`: how fast the project takes attendance, against the earlier projects' way.

One run measures everything, so every ratio compares numbers taken on the same machine in the same
minutes (shared machines are noisy):

1. Per-stage ms per frame of the volunteer-side pipeline (JPEG decode, detect, landmarks +
   descriptor, match) and the whole ``BatchProcessor.process`` per frame.
2. BASELINE (what earlier projects do: one process, cv2 reads every frame, dlib HOG with one
   upsample, 68-point landmarks, dlib's ResNet with 1 jitter, match at 0.6) against PROJECT (a
   whole ``AttendanceJob`` with one local worker, start-up included and excluded), and whether the
   attendance is the same. On a 130 px video and on a dim 55 px one.
3. Efficiency T(1)/(W*T(W)) through the real protocol: the requester in a thread of this process
   (workers=0) and W volunteer processes with one core each, timed from when all W have joined.
4. The requester's CPU against the volunteers' busy CPU.
5. Requester peak RSS (and whether it grows with the video's length), the RSS of a volunteer with
   4 worker processes, and how long a worker process takes to be ready.
6. Accuracy (also alone, with --accuracy): composed lecture halls (tools/hall.py, from
   ../shared/people, several seeds) and a real video, the project's whole job against the plain
   face_recognition loop (the baseline of 2) on the same sampled frames, scored against the truth:
   statuses, phantom sightings, unknown people against strangers, sightings per student, first/last
   seen, CPU per frame.

Videos are composed from ../shared/faces (enroll/ + probe/) when present, else from the demo's
sample faces. Network: 127.0.0.1 only; no mDNS; nothing is written outside a temporary folder
(and the --markdown file).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# The team's shared material beside the checkout (never part of it); a worktree elsewhere names it
# with P2P_ATTENDANCE_SHARED.
SHARED = Path(os.environ.get("P2P_ATTENDANCE_SHARED") or Path(__file__).resolve().parents[2].parent / "shared")
SHARED_FACES = SHARED / "faces"
BENCH_CODE = "135790"
BATCH_SIZE = __import__("p2p_attendance.job", fromlist=["JobOptions"]).JobOptions().batch_size  # the stage timings use the job's batches


# -- pure helpers (tested without models) -----------------------------------------------------------
def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table with padded columns (readable in a terminal too)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] + [""] * (len(headers) - len(row)) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells[1:]]
    return "\n".join(lines)


def efficiency(t1: float, frames1: int, tw: float, framesw: int, w: int) -> float:
    """Parallel efficiency T(1)/(W*T(W)), with T normalised per frame (runs may time a few frames
    more or fewer): rate(W) / (W * rate(1))."""
    if t1 <= 0 or tw <= 0 or frames1 <= 0 or w <= 0:
        return float("nan")
    return (framesw / tw) / (w * frames1 / t1)


def worker_counts(cpus: int, cap: int | None) -> list[int]:
    """1, 2, 4, ... up to min(cpus, cap), with that maximum itself always included."""
    top = max(1, min(cpus, cap) if cap else cpus)
    counts, w = [], 1
    while w < top:
        counts.append(w)
        w *= 2
    counts.append(top)
    return counts


def compare_attendance(a: list, b: list) -> tuple[bool, int, list[str]]:
    """Two StudentAttendance lists: (same statuses, max |frames_seen| difference, ids that differ)."""
    by_a = {s.id: s for s in a}
    by_b = {s.id: s for s in b}
    differ = sorted(i for i in set(by_a) | set(by_b) if i not in by_a or i not in by_b or by_a[i].status != by_b[i].status)
    common = set(by_a) & set(by_b)
    max_diff = max((abs(by_a[i].frames_seen - by_b[i].frames_seen) for i in common), default=0)
    return not differ, max_diff, differ


def truth_misses(students: list, expected: dict[str, str]) -> list[str]:
    """The students whose status is not the expected one, as "id: got (want)"."""
    got = {s.id: s.status for s in students}
    return [f"{sid}: {got.get(sid, 'missing')} (want {want})" for sid, want in sorted(expected.items()) if got.get(sid) != want]


def ms(seconds: float, frames: int) -> str:
    """Milliseconds per frame, as table text."""
    return f"{1000 * seconds / frames:.1f}" if frames else "n/a"


def mib(n_bytes: float) -> str:
    """A byte count in MiB, as table text."""
    return f"{n_bytes / 2**20:.0f} MiB"


def machine_lines() -> list[str]:
    """The machine the figures come from: CPU, memory, OS, Python and dlib versions, load."""
    import psutil

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    try:
        import dlib

        dlib_version = dlib.__version__
    except Exception:  # reported, not fatal
        dlib_version = "not importable"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"CPU: {model}, {os.cpu_count()} logical cores",
        f"RAM: {psutil.virtual_memory().total / 2**30:.1f} GiB",
        f"OS: {platform.system()} {platform.release()} ({platform.machine()})",
        f"Python {platform.python_version()}, dlib {dlib_version}",
        f"Load average at start (1, 5, 15 min): {load}",
    ]


# -- material --------------------------------------------------------------------------------------
@dataclass
class Material:
    """The faces a bench run composes its videos from, and where it writes them."""
    source: str
    enroll_dir: Path
    folder: Path
    engine: object
    _demo_photos: dict = field(default_factory=dict)

    def video(self, name: str, duration_s: float, face_width: int, dim: bool) -> tuple[Path, dict[str, str]]:
        """Compose a class video; returns it and the expected status per student id."""
        from p2p_attendance.tools.compose import Appearance, compose_class_video, labelled_class
        from p2p_attendance.tools.demo import lfw_face

        if self.source == "shared":
            appearances, expected = labelled_class(self.enroll_dir.parent, self.engine, lfw_face(1), duration_s)
            statuses = {sid: e["status"] for sid, e in expected.items()}
        else:
            d, third, p = duration_s, duration_s / 3, self._demo_photos
            appearances = [
                Appearance("grace_hopper", p["grace"], 0, 0, d, away=[(third, third + d / 6)]),
                Appearance("eileen_collins", p["astronaut"], 1, d / 6, d),
                Appearance("unknown", p["stranger"], 2, 0, d),
            ]
            statuses = {"grace_hopper": "present", "eileen_collins": "present", "ada_lovelace": "absent"}
        path = compose_class_video(self.folder / f"{name}.mp4", appearances, duration_s, face_width=face_width, dim=dim)
        return path, statuses


def bench_class(args, folder: Path):
    """(engine, material, roster): the engine, the faces (--faces) and their class enrolled."""
    from p2p_attendance.compute.engine import FaceEngine
    from p2p_attendance.roster.enroll import enroll_folder

    engine = FaceEngine()
    material = load_material(args.faces, folder, engine)
    roster = enroll_folder(material.enroll_dir, "Bench class", lambda: engine, root=folder / "classes").roster
    _say(f"faces: {material.source} ({material.enroll_dir}); {len(roster.as_students())} students enrolled, descriptor: {engine.descriptor_name}")
    return engine, material, roster


def load_material(faces: Path | None, folder: Path, engine) -> Material:
    """The labelled faces (--faces, ../shared/faces) if present, else the demo's sample faces."""
    faces = faces if faces is not None else SHARED_FACES
    if (faces / "enroll").is_dir() and (faces / "probe").is_dir():
        return Material("shared", faces / "enroll", folder, engine)
    from p2p_attendance.compute.video import read_image_rgb
    from p2p_attendance.tools.compose import face_photo
    from p2p_attendance.tools.demo import astronaut_path, build_demo, grace_hopper_path, lfw_face

    demo = build_demo(folder / "demo", engine, duration_s=6)  # for its enrollment photos
    photos = {
        "grace": face_photo(read_image_rgb(grace_hopper_path()), engine),
        "astronaut": face_photo(read_image_rgb(astronaut_path()), engine),
        "stranger": face_photo(lfw_face(1), engine),
    }
    return Material("demo", demo.photos_dir, folder, engine, photos)


# -- 1. per-stage timings --------------------------------------------------------------------------
@dataclass
class StageTimes:
    """Time spent per stage of the pipeline, over the frames of one run."""
    frames: int = 0
    faces: int = 0
    read_encode_s: float = 0.0  # requester side: cv2 read of the sampled frame + JPEG encode
    decode_s: float = 0.0
    detect_s: float = 0.0
    detect_gray_s: float = 0.0  # the same search on grey levels, as whole-frame searches run
    encode_s: float = 0.0
    match_s: float = 0.0
    process_s: float = 0.0  # BatchProcessor.process, whole batches of BATCH_SIZE


def time_stages(video: Path, sample_fps: float, roster, engine, deadline_s: float) -> StageTimes:
    """Run each stage of the pipeline on a video's sampled frames alone, timing each (up to deadline_s)."""
    from p2p_attendance.compute.batch import BatchProcessor, JobParams
    from p2p_attendance.compute.engine import DetectionSettings, FaceEngine, to_gray
    from p2p_attendance.compute.matching import DEFAULT_TOLERANCE, match_encodings, resolve_frame_conflicts
    from p2p_attendance.compute.video import FrameSampler, decode_jpeg_rgb, encode_jpeg, probe_video

    info = probe_video(video)
    ids, matrix = roster.matrix()
    out = StageTimes()
    entries, jpegs = [], []
    started = time.perf_counter()
    mark = started
    for frame in FrameSampler(info, sample_fps):
        jpegs.append(encode_jpeg(frame.bgr, 90))
        entries.append({"token": frame.index})
        now = time.perf_counter()
        out.read_encode_s += now - mark
        mark = now
    stop_at = time.monotonic() + deadline_s
    for jpeg in jpegs:
        if time.monotonic() > stop_at:
            break
        t0 = time.perf_counter()
        rgb = decode_jpeg_rgb(jpeg)
        t1 = time.perf_counter()
        boxes = [box for box, _ in engine.detect(rgb)]
        t2 = time.perf_counter()
        encodings = engine.encode(rgb, boxes)
        t3 = time.perf_counter()
        resolve_frame_conflicts(match_encodings(encodings, matrix, ids, DEFAULT_TOLERANCE))
        t4 = time.perf_counter()
        out.decode_s += t1 - t0
        out.detect_s += t2 - t1
        t5 = time.perf_counter()
        engine.detect(to_gray(rgb))
        out.detect_gray_s += time.perf_counter() - t5
        out.encode_s += t3 - t2
        out.match_s += t4 - t3
        out.frames += 1
        out.faces += len(boxes)
    processor = BatchProcessor(FaceEngine())
    processor.start_job(JobParams(ids, matrix, DEFAULT_TOLERANCE, DetectionSettings()))
    done = 0
    for start in range(0, out.frames, BATCH_SIZE):
        t0 = time.perf_counter()
        processor.process(entries[start : start + BATCH_SIZE], jpegs[start : start + BATCH_SIZE])
        out.process_s += time.perf_counter() - t0
        done += len(entries[start : start + BATCH_SIZE])
    out.read_encode_s *= out.frames / max(1, len(jpegs))
    return out


@dataclass
class VerificationCost:
    """What checking sightings costs the requester, against what the volunteers spend."""
    students: int
    frames: int
    faces_per_frame: float
    volunteer_s_per_frame: float  # BatchProcessor.process CPU, per sampled frame
    verify_s: float  # the checker's CPU for one sighting: decode its frame + one descriptor at its box

    def share(self, window_s: float, sample_fps: float) -> float:
        """Checker CPU / volunteers' CPU when every student is verified once per window (the worst
        case: each sighting in a frame of its own, so nothing is shared between them)."""
        return self.students * self.verify_s / (window_s * sample_fps * self.volunteer_s_per_frame)


def verification_cost(folder: Path, engine, students: int = 35, duration_s: float = 24.0, sample_fps: float = 1.0) -> VerificationCost:
    """The checker's CPU against the volunteers' on a class of `students` faces (scikit-image's
    LFW faces, all seated all along, 1280x720): what verified sightings cost (issue 14)."""
    import random

    import numpy as np

    from p2p_attendance.compute.batch import BatchProcessor, JobParams, descriptors_at
    from p2p_attendance.compute.engine import DetectionSettings
    from p2p_attendance.compute.matching import DEFAULT_TOLERANCE
    from p2p_attendance.compute.video import FrameSampler, encode_jpeg, probe_video
    from p2p_attendance.tools.compose import Appearance, FacePhoto, compose_class_video
    from p2p_attendance.tools.demo import lfw_face

    appearances = []
    for n in range(students):
        rgb = lfw_face(n)
        appearances.append(Appearance(f"s{n:02d}", FacePhoto(rgb, (80, 80, 280, 280)), n, 0, duration_s))
    video = compose_class_video(folder / f"class-{students}.mp4", appearances, duration_s, face_width=80)
    info = probe_video(video)
    jpegs = [encode_jpeg(frame.bgr, 90) for frame in FrameSampler(info, sample_fps)]
    entries = [{"token": i} for i in range(len(jpegs))]
    processor = BatchProcessor(engine)
    processor.start_job(JobParams([], np.zeros((0, 128), np.float32), DEFAULT_TOLERANCE, DetectionSettings()))
    outputs = []
    started = time.process_time()
    for start in range(0, len(jpegs), BATCH_SIZE):
        outputs.append(processor.process(entries[start : start + BATCH_SIZE], jpegs[start : start + BATCH_SIZE]))
    volunteer_s = time.process_time() - started
    sightings = [(start + i, face.box) for start, out in zip(range(0, len(jpegs), BATCH_SIZE), outputs) for i, faces in enumerate(out.faces) for face in faces]
    picked = random.Random(1).sample(sightings, min(len(sightings), 3 * students))
    started = time.process_time()
    for index, box in picked:
        descriptors_at(engine, {}, jpegs[index], None, [box])
    verify_s = (time.process_time() - started) / max(1, len(picked))
    return VerificationCost(students, len(jpegs), len(sightings) / max(1, len(jpegs)), volunteer_s / max(1, len(jpegs)), verify_s)


def requester_frame_cost(video: Path, sample_fps: float) -> tuple[float, float, int, int]:
    """CPU seconds per sampled frame to produce its JPEG: (decoding every frame with OpenCV's
    VideoCapture, as the requester did before; the keyframe-aware FrameSampler), with the number
    of frames the FrameSampler decoded and the number sampled."""
    import cv2

    from p2p_attendance.compute.video import FrameSampler, encode_jpeg, probe_video

    info = probe_video(video)
    total = info.sample_count(sample_fps)
    started = time.process_time()
    capture = cv2.VideoCapture(str(video))
    position = 0
    for index in range(total):
        target = info.source_frame(index, sample_fps)
        while position <= target and capture.grab():
            position += 1
        ok, frame = capture.retrieve()
        if ok:
            encode_jpeg(frame, 90)
    capture.release()
    every_frame = (time.process_time() - started) / total
    started = time.process_time()
    sampler = FrameSampler(info, sample_fps)
    count = sum(1 for frame in sampler if encode_jpeg(frame.bgr, 90))
    return every_frame, (time.process_time() - started) / max(1, count), sampler.decoded, count


def producer_frames_per_s(video: Path, sample_fps: float, threads: int, quality: int = 90) -> tuple[float, float, int]:
    """The JPEG path's producer (every sample decoded and JPEG-encoded, as FrameProducer does
    with keyframes off) with `threads` readers: (sampled frames a wall second, CPU seconds a
    frame, frames). threads=1 is one FrameSampler, as before issue 17."""
    from p2p_attendance.compute.frames_parallel import ParallelFrames
    from p2p_attendance.compute.video import FrameSampler, encode_jpeg, probe_video

    info = probe_video(video)
    wall, cpu = time.perf_counter(), time.process_time()
    if threads == 1:
        count = sum(1 for frame in FrameSampler(info, sample_fps) if encode_jpeg(frame.bgr, quality))
    else:
        count = sum(1 for _ in ParallelFrames(info, sample_fps, None, lambda frame: encode_jpeg(frame.bgr, quality), threads=threads))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count / wall, cpu / max(1, count), count


# -- 2. the baseline -------------------------------------------------------------------------------
class Baseline:
    """What earlier projects do, straight on dlib (face_recognition's calls, without its package)."""

    def __init__(self, tolerance: float = 0.6):
        import dlib
        import face_recognition_models as models

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(models.pose_predictor_model_location())  # 68 points
        self.resnet = dlib.face_recognition_model_v1(models.face_recognition_model_location())
        self.tolerance = tolerance

    def encode(self, rgb, rect):
        import numpy as np

        return np.array(self.resnet.compute_face_descriptor(rgb, self.landmarks(rgb, rect), 1), np.float32)

    def enroll(self, folder: Path) -> tuple[list[str], "object", list[str]]:
        """face_encodings(load_image_file(photo))[0] for each enrollment photo."""
        import numpy as np

        from p2p_attendance.compute.video import read_image_rgb
        from p2p_attendance.roster.enroll import find_photos

        ids, rows, missed = [], [], []
        for entry in find_photos(folder):
            rgb = read_image_rgb(entry.path)
            rects = self.detector(rgb, 1) if rgb is not None else []
            if not rects:
                missed.append(entry.path.name)
                continue
            ids.append(entry.student_id)
            rows.append(self.encode(rgb, rects[0]))
        return ids, np.array(rows, np.float32).reshape(-1, 128), missed

    def run(self, video: Path, sample_fps: float, ids: list[str], matrix, deadline_s: float):
        """(FrameResults, seconds per stage) for the whole video."""
        import cv2
        import numpy as np

        from p2p_attendance.attendance.model import Face, FrameResult
        from p2p_attendance.compute.video import probe_video

        info = probe_video(video)
        wanted = {info.source_frame(i, sample_fps): i for i in range(info.sample_count(sample_fps))}
        times = {"read": 0.0, "detect": 0.0, "encode": 0.0, "match": 0.0}
        results = []
        capture = cv2.VideoCapture(str(video))
        stop_at = time.monotonic() + deadline_s
        position = 0
        try:
            while position < info.frame_count + 10 and time.monotonic() < stop_at:
                t0 = time.perf_counter()
                ok, bgr = capture.read()  # earlier projects read every frame and keep 1 a second
                if not ok:
                    break
                index = wanted.get(position)
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if index is not None else None
                t1 = time.perf_counter()
                times["read"] += t1 - t0
                if index is not None:
                    rects = self.detector(rgb, 1)
                    t2 = time.perf_counter()
                    encodings = [self.encode(rgb, rect) for rect in rects]
                    t3 = time.perf_counter()
                    faces, kept = [], []
                    for rect, enc in zip(rects, encodings):
                        distances = np.linalg.norm(matrix - enc, axis=1) if len(ids) else np.array([np.inf])
                        best = int(distances.argmin())
                        sid = ids[best] if distances[best] <= self.tolerance else None
                        faces.append(Face((rect.left(), rect.top(), rect.right(), rect.bottom()), sid, float(distances[best])))
                        kept.append(None if sid else tuple(float(x) for x in enc))
                    results.append(FrameResult(index, round(position / info.fps, 3), tuple(faces), tuple(kept)))
                    t4 = time.perf_counter()
                    times["detect"] += t2 - t1
                    times["encode"] += t3 - t2
                    times["match"] += t4 - t3
                position += 1
        finally:
            capture.release()
        return results, times


# -- jobs through the real protocol ----------------------------------------------------------------
@dataclass
class JobRun:
    """One whole job's figures: wall time, first and last result, when every volunteer had joined."""
    report: object = None
    frames: int = 0
    wall_s: float = 0.0  # AttendanceJob.run(), start-up included
    first_result_s: float | None = None  # from run() start
    first_frames: int = 0  # frames delivered with the first result
    last_result_s: float | None = None
    all_joined_s: float | None = None  # when the W-th volunteer joined, from run() start
    frames_at_join: int = 0
    cpu_s: float = 0.0  # this process (the requester), user + system, during run()
    busy_s: float = 0.0  # the volunteers' RESULT busy_s, summed
    rss_start: int = 0
    rss_peak: int = 0
    tree_peak: int = 0  # peak PSS of the volunteers' process trees, summed
    checks: int = 0  # validation batches done twice
    results: dict = field(default_factory=dict)  # sample index -> FrameResult, as the requester holds them
    unknown_groups: tuple = ()  # the report's UnknownGroups (attendance/clustering.py): which faces each holds

    @property
    def steady_fps(self) -> float:
        """Frames/s from the first result to the last (start-up excluded)."""
        span = (self.last_result_s or 0) - (self.first_result_s or 0)
        return (self.frames - self.first_frames) / span if span > 0 else float("nan")

    @property
    def scaled_s(self) -> float:
        return self.wall_s - (self.all_joined_s or 0.0)


def _tree_rss(process) -> int:
    """Memory of a process tree as PSS (shared pages split between their users): summing RSS
    would count the model pages the forked workers share once per worker."""
    import psutil

    total = 0
    try:
        procs = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except psutil.Error:
            pass
    return total


def run_job(
    video: Path, roster, sample_fps: float, workers: int = 0, volunteers: int = 0, cores: int = 1, timeout_s: float = 600.0, sample_tree: bool = False
) -> JobRun:
    """One AttendanceJob on loopback: the requester on a thread here, `workers` local cores
    (the job's own volunteer) and/or `volunteers` extra volunteer processes with `cores` each."""
    import psutil

    from p2p_attendance.job import JOIN_CODE_ENV, AttendanceJob, JobOptions, app_command
    from p2p_attendance.swarm.peers import PeerState

    out = JobRun()
    wanted = max(1, volunteers + (1 if workers else 0))
    joined: set[str] = set()
    clock = {"start": None}

    seen: set[int] = set()

    def on_event(kind, payload):
        now = time.monotonic()
        if clock["start"] is None:
            return
        if kind == "frame" and payload.index not in seen:  # a frame renamed later (a batch seam's names) is no new result
            seen.add(payload.index)
            if out.first_result_s is None:
                out.first_result_s = now - clock["start"]
            if now - clock["start"] - out.first_result_s < 0.05:
                out.first_frames += 1  # the first RESULT's frames arrive together
            out.last_result_s = now - clock["start"]
        elif kind == "peer" and PeerState(payload.get("state")).active:
            joined.add(payload["id"])
            if out.all_joined_s is None and len(joined) >= wanted:
                out.all_joined_s = now - clock["start"]
                out.frames_at_join = len(job.requester.results)

    options = JobOptions(
        sample_fps=sample_fps, workers=workers, listen="tcp://127.0.0.1:0", join_code=BENCH_CODE,
        discovery=False, checkpoint=False, persistent_key=False, batch_size=BATCH_SIZE,
    )
    job = AttendanceJob(video, roster, options, on_event=on_event)
    stop = threading.Event()
    failure: list[BaseException] = []
    me = psutil.Process()

    def target():
        try:
            clock["start"] = time.monotonic()
            out.report = job.run(stop)
            out.wall_s = time.monotonic() - clock["start"]
        except BaseException as exc:  # reported by the caller
            failure.append(exc)

    processes: list[subprocess.Popen] = []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.rss_start = me.memory_info().rss
    out.rss_peak = out.rss_start
    thread = threading.Thread(target=target, name="bench-requester", daemon=True)
    thread.start()
    env = dict(os.environ, **{JOIN_CODE_ENV: BENCH_CODE})
    line = job.loopback_line
    for n in range(volunteers):
        command = [*app_command(), "volunteer", "--connect", line, "--cores", str(cores), "--name", f"bench-{n + 1}",
                   "--single-job", "--no-discovery", "--quiet"]
        processes.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    handles = [psutil.Process(p.pid) for p in processes]
    deadline = time.monotonic() + timeout_s
    try:
        while thread.is_alive():
            if time.monotonic() > deadline:
                stop.set()
                thread.join(15)
                raise TimeoutError(f"the job on {video.name} did not finish in {timeout_s:.0f} s")
            out.rss_peak = max(out.rss_peak, me.memory_info().rss)
            if handles and sample_tree:  # reading smaps is costly: never during CPU-share runs
                out.tree_peak = max(out.tree_peak, sum(_tree_rss(h) for h in handles))
            thread.join(0.1)
        after = resource.getrusage(resource.RUSAGE_SELF)
        out.cpu_s = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        if failure:
            raise failure[0]
    finally:
        for process in processes:
            try:
                process.wait(timeout=15)  # they leave by themselves on the requester's BYE
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    out.frames = len(job.requester.results)
    out.busy_s = sum(p.busy_s for p in job.requester.peers.values())
    out.checks = job.requester.validation["checked"]
    out.results = dict(job.requester.results)
    out.unknown_groups = job.unknown_groups()
    return out


def app_env(folder: Path) -> dict[str, str]:
    """The environment for the app's own commands: its user folders inside the bench's folder."""
    env = dict(os.environ)
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        path = folder / "user" / var.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[var] = str(path)
    return env


def app_run_peak_rss(video: Path, class_name: str, env: dict[str, str], out: Path, timeout_s: float) -> tuple[int, float, int]:
    """`p2p-attendance run VIDEO --class C --workers 1` as the teacher runs it: the peak RSS of that
    process alone (the requester; its local volunteer is a child, not counted), wall s, exit code."""
    import psutil

    from p2p_attendance.job import app_command

    command = [*app_command(), "run", str(video), "--class", class_name, "--workers", "1", "--listen", "tcp://127.0.0.1:0",
               "--no-discovery", "--json", str(out)]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    handle = psutil.Process(process.pid)
    peak = 0
    try:
        while process.poll() is None and time.monotonic() - started < timeout_s:
            try:
                peak = max(peak, handle.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.kill()
        code = process.wait(10)
    return peak, time.monotonic() - started, code


def worker_ready_times(repeat: int, timeout_s: float = 60.0) -> list[float]:
    """WorkerPool(1) start to all_ready(): spawn, imports, models."""
    from p2p_attendance.swarm.workers import WorkerPool

    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        pool = WorkerPool(1)
        try:
            deadline = time.monotonic() + timeout_s
            while not pool.all_ready() and time.monotonic() < deadline:
                pool.poll()
                time.sleep(0.005)
            if pool.all_ready():
                times.append(time.perf_counter() - started)
        finally:
            pool.close()
    return times


# -- 6. accuracy against the truth ------------------------------------------------------------------
SHARED_PEOPLE = SHARED / "people"
SHARED_VIDEO = SHARED / "videos" / "facenet-pytorch__video.mp4"
WITHIN_S = 3.0  # first/last seen this close to the truth count as right (sampling is 1 s)


def face_owner(box, visible: dict) -> str | None:
    """Whose true face a reported box is on: the person whose face box holds the reported box's
    centre (the nearest centre when boxes overlap), or None (a false face, or a hidden one)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    holders = [(abs(cx - (b[0] + b[2]) / 2) + abs(cy - (b[1] + b[3]) / 2), pid) for pid, b in visible.items()
               if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]]
    return min(holders)[1] if holders else None


@dataclass
class Sightings:
    """One run's frames scored against the truth."""

    correct: dict[str, int] = field(default_factory=dict)  # per student: frames seen on their own face
    phantom: int = 0  # a student reported in a frame where they are not visible
    wrong_face: int = 0  # a student reported on another face while their own is visible elsewhere
    faces_found: int = 0  # boxes reported
    false_boxes: int = 0  # boxes on no visible face (a false face, a hidden one, a duplicate elsewhere)
    faces_on_people: int = 0  # visible faces with a reported box on them
    faces_visible: int = 0  # true faces in the scored frames
    frames: int = 0


def score_sightings(results, visible_at, students: list[str]) -> Sightings:
    """results: FrameResults; visible_at(time_s) -> {person: face box} (the truth)."""
    out = Sightings(correct={sid: 0 for sid in students})
    for result in results:
        visible = visible_at(result.time_s)
        out.frames += 1
        out.faces_visible += len(visible)
        counted: set[str] = set()
        owners: set[str] = set()
        for face in result.faces:
            owner = face_owner(face.box, visible)
            out.faces_found += 1
            if owner is not None:
                owners.add(owner)
            else:
                out.false_boxes += 1
            sid = face.student_id
            if sid is None or sid in counted:
                continue  # the rule counts a student once a frame
            counted.add(sid)
            if sid not in visible:
                out.phantom += 1
            elif owner == sid:
                out.correct[sid] = out.correct.get(sid, 0) + 1
            else:
                out.wrong_face += 1
        out.faces_on_people += len(owners)
    return out


def sightings_against(project: Sightings, plain: Sightings, floor: float = 0.95) -> tuple[str | None, float, list[str], int]:
    """Per student, the project's right sightings over the plain loop's on the same frames:
    (worst student, their ratio, the students under `floor` (worst first), students the plain loop saw)."""
    ratios = {sid: project.correct.get(sid, 0) / n for sid, n in plain.correct.items() if n}
    if not ratios:
        return None, float("nan"), [], 0
    ranked = sorted(ratios, key=lambda sid: (ratios[sid], sid))
    return ranked[0], ratios[ranked[0]], [sid for sid in ranked if ratios[sid] < floor], len(ratios)


def statuses_right(students: list, expected: dict[str, dict]) -> int:
    """How many students got their expected status."""
    got = {s.id: s.status for s in students}
    return sum(got.get(sid) == e["status"] for sid, e in expected.items())


def seen_times_error(students: list, expected: dict[str, dict], within_s: float = WITHIN_S) -> tuple[int, int, float]:
    """First and last seen against the truth, for students visible at all: (times within
    within_s, times compared, worst error in s; a student never reported counts as wrong)."""
    got = {s.id: s for s in students}
    right, total, worst = 0, 0, 0.0
    for sid, e in expected.items():
        if e["first"] is None:
            continue
        s = got.get(sid)
        for want, have in ((e["first"], getattr(s, "first_seen_s", None)), (e["last"], getattr(s, "last_seen_s", None))):
            total += 1
            error = abs(have - want) if have is not None else float("inf")
            right += error <= within_s
            worst = max(worst, error)
    return right, total, worst


@dataclass
class Scenario:
    """One accuracy scenario and its table cells."""
    name: str
    cells: dict[str, str]


def unsure_text(groups, results: dict, visible_at, labelled: bool) -> str:
    """The unsure groups (faces that look like students, attendance/clustering.py): how many, and
    with the truth whose faces each one really holds: '1 (lfw_a: looks like lfw_b, lfw_a)'."""
    unsure = [g for g in groups if g.unsure]
    if not unsure or not labelled:
        return str(len(unsure))
    by_index = {r.index: r for r in results.values()}
    parts = []
    for g in unsure:
        owners = [face_owner(by_index[f].faces[p].box, visible_at(by_index[f].time_s)) for f, p in g.faces if f in by_index]
        counted = {o: owners.count(o) for o in owners}
        owner = max(counted, key=lambda o: (counted[o], str(o))) if counted else None
        parts.append(f"{owner or 'no face'}: looks like {', '.join(g.looks_like)}")
    return f"{len(unsure)} ({'; '.join(parts)})"


def _pct(a: float, b: float) -> str:
    return f"{100 * a / b:.0f} %" if b else "n/a"


def accuracy_scenario(name: str, video: Path, roster, baseline, base_roster, sample_fps: float, truth=None, timeout_s: float = 900) -> Scenario:
    """The project's whole job (one local worker) and the plain loop on the same sampled frames,
    scored against the truth (a HallTruth), or, without one, against each other and against the
    fact that nobody on the roster is in the video."""
    from p2p_attendance.attendance.tally import tally
    from p2p_attendance.compute.video import probe_video

    info = probe_video(video)
    students = roster.as_students()
    ids = [s.id for s in students]
    _say(f"accuracy, {name}: the project's job")
    run = run_job(video, roster, sample_fps, workers=1, timeout_s=timeout_s)
    proj_cpu = (run.cpu_s + run.busy_s) / max(1, run.frames)
    _say(f"accuracy, {name}: the plain loop")
    cpu0 = time.process_time()
    base_results, _ = baseline.run(video, sample_fps, *base_roster, deadline_s=timeout_s)
    base_cpu = (time.process_time() - cpu0) / max(1, len(base_results))
    base_students, base_unknowns, _, _ = tally(base_results, students, info.duration_s)
    proj_results = list(run.results.values())
    if truth is not None:
        visible_at, expected = truth.visible_at, truth.expected(sample_fps)
        strangers = str(truth.strangers_seen(sample_fps))
    else:  # nobody enrolled is in the video: every sighting is a phantom, every status absent
        visible_at, strangers = (lambda t: {}), "not labelled"
        expected = {sid: {"status": "absent", "first": None, "last": None} for sid in ids}
    proj, base = score_sightings(proj_results, visible_at, ids), score_sightings(base_results, visible_at, ids)
    n = len(expected)
    cells = {
        "sampled frames (project / plain loop)": f"{run.frames} / {len(base_results)}",
        "statuses right": f"**{statuses_right(run.report.students, expected)} of {n}** (plain {statuses_right(base_students, expected)})",
        "wrong statuses (project)": ", ".join(truth_misses(run.report.students, {sid: e["status"] for sid, e in expected.items()})) or "none",
        "phantom sightings (student not visible)": f"**{proj.phantom}** (plain {base.phantom})",
        "sightings on another student's face": f"{proj.wrong_face} (plain {base.wrong_face})",
        # unknown people only: an unsure group looks like students (the rule could not tell which), not a stranger
        "unknown people / strangers present": f"**{sum(not u.unsure for u in run.report.unknown_faces)}** / {strangers} (plain {len(base_unknowns)})",
        "unsure groups (look like students)": unsure_text(run.unknown_groups, run.results, visible_at, truth is not None),
    }
    if truth is not None:
        worst, ratio, under, compared = sightings_against(proj, base)
        cells["faces found / visible"] = f"{_pct(proj.faces_on_people, proj.faces_visible)} (plain {_pct(base.faces_on_people, base.faces_visible)})"
        cells["boxes on no visible face"] = f"{proj.false_boxes} (plain {base.false_boxes})"
        cells["sightings vs plain loop: worst student"] = (
            f"**{100 * ratio:.0f} %** ({worst}: {proj.correct.get(worst, 0)} vs {base.correct[worst]} frames)" if worst else "n/a")
        # by name: which students to look at, not only how many
        cells["students under 95 % of the plain loop's sightings"] = f"**{len(under)}** of {compared}" + "".join(
            f"{'; ' if k else ': '}{sid} {proj.correct.get(sid, 0)}/{base.correct[sid]}" for k, sid in enumerate(under))
        right, total, worst_s = seen_times_error(run.report.students, expected)
        b_right, _, _ = seen_times_error(base_students, expected)
        worst_text = f"{worst_s:.0f} s" if math.isfinite(worst_s) else "never seen"
        cells["first/last seen within 3 s"] = f"{right} of {total}, worst {worst_text} (plain {b_right})"
    else:
        per_frame_p = {r.index: len(r.faces) for r in proj_results}
        per_frame_b = {r.index: len(r.faces) for r in base_results}
        fewer = sum(per_frame_p.get(i, 0) < c for i, c in per_frame_b.items())
        cells["faces found (project vs plain loop)"] = (f"{sum(per_frame_p.values())} vs {sum(per_frame_b.values())}; "
                                                        f"fewer than the plain loop in {fewer} of {len(per_frame_b)} frames")
    cells["CPU per frame (project vs plain loop)"] = f"{proj_cpu:.2f} s vs {base_cpu:.2f} s (**{base_cpu / proj_cpu:.1f}x**)" if proj_cpu > 0 else "n/a"
    return Scenario(name, cells)


def accuracy_table(scenarios: list[Scenario]) -> str:
    """Measures as rows, scenarios as columns (a cell a scenario does not have stays empty)."""
    measures: list[str] = []
    for s in scenarios:
        measures += [m for m in s.cells if m not in measures]
    return format_table(["Measure", *(s.name for s in scenarios)], [[m, *(s.cells.get(m, "") for s in scenarios)] for m in measures])


def accuracy_section(folder: Path, seeds: list[int], duration_s: float, people: Path, video: Path | None, video_fps: float) -> str:
    """Compose a hall per seed, run both loops on each (and on the real video), return the table."""
    from p2p_attendance.compute.engine import FaceEngine
    from p2p_attendance.roster.enroll import enroll_folder
    from p2p_attendance.tools.hall import compose_hall

    engine = FaceEngine()
    baseline = Baseline()
    scenarios, roster, base_roster = [], None, None
    for seed in seeds:
        _say(f"accuracy: composing the hall, seed {seed}")
        path = folder / f"hall-{seed}.mp4"
        truth = compose_hall(path, people, engine, seed=seed, duration_s=duration_s)
        enroll_dir = truth.write_enrollment(folder / f"hall-{seed}-enroll")
        roster = enroll_folder(enroll_dir, f"Hall {seed}", lambda: engine, root=folder / "classes").roster
        base_ids, base_matrix, _ = baseline.enroll(enroll_dir)
        base_roster = (base_ids, base_matrix)
        scenarios.append(accuracy_scenario(f"hall seed {seed}", path, roster, baseline, base_roster, 1.0, truth))
    if video is not None and video.is_file() and roster is not None:
        scenarios.append(accuracy_scenario(f"{video.name} ({video_fps:g} frames/s)", video, roster, baseline, base_roster, video_fps))
    return accuracy_table(scenarios)


# -- 3 + 4. scaling through the protocol -------------------------------------------------------------
@dataclass
class Scaling:
    """Jobs of W = 1, 2, 4, ... volunteer processes (1 core each) on one phone-like video."""
    long_video: Path  # the composed class (MPEG-4), also the memory runs' 1x video
    frames: int  # sampled frames of the phone-like copy
    counts: list[int]
    runs: dict[int, JobRun]  # the median run of each W
    repeats: int


def run_scaling(material: Material, roster, scale_duration: float, max_workers: int, sample_fps: float, repeats: int) -> Scaling:
    """The scaling jobs, each W `repeats` times (jobs of seconds: one slow tail moves T(W) by 10 %)."""
    from p2p_attendance.compute.video import probe_video
    from p2p_attendance.tools.compose import camera_copy

    long_video, _ = material.video("class-long", scale_duration, 130, False)
    _say(f"a phone-like H.264 copy of {scale_duration:.0f} s of video")
    # A phone's keyframe a second is one per sample at 1 frame/s; at higher sample rates (many
    # frames from a short video, for many volunteers) keep one in every sample's slot so that every
    # sample still travels as it is (rounded down: a longer gap would leave a slot without one).
    gop = max(1, math.floor(30 / sample_fps))
    camera_video = camera_copy(long_video, material.folder / "class-long-camera.mp4", scale_duration, gop, 0)
    counts = worker_counts(os.cpu_count() or 1, max_workers)
    frames = probe_video(camera_video).sample_count(sample_fps)
    runs: dict[int, JobRun] = {}
    for w in counts:
        _say(f"scaling: W={w} volunteers on {scale_duration:.0f} s of video ({frames} frames), {repeats} times")
        tries = [run_job(camera_video, roster, sample_fps, workers=0, volunteers=w, timeout_s=120 + 30 * frames)
                 for _ in range(repeats)]
        runs[w] = sorted(tries, key=lambda r: r.scaled_s)[len(tries) // 2]  # the median run
    return Scaling(long_video, frames, counts, runs, repeats)


def bench_repeats(args) -> int:
    """Runs of each W: --repeats, else 3 (1 with --quick)."""
    return args.repeats or (1 if args.quick else 3)


def requester_share_row(what: str, r: JobRun) -> list[str]:
    """Row 4: the requester's CPU against the volunteers' busy CPU in one job."""
    share = r.cpu_s / r.busy_s if r.busy_s else float("nan")
    return [f"4. requester CPU / volunteers' busy CPU, {what}", f"{100 * share:.1f} %",
            f"requester {ms(r.cpu_s, r.frames)} ms/frame, volunteers {ms(r.busy_s, r.frames)} ms/frame"]


def scaling_rows(scaling: Scaling) -> list[list[str]]:
    """Rows 3 (efficiency per W against W = 1) and 4 (the requester's CPU share per W)."""
    rows: list[list[str]] = []
    one = scaling.runs[1]
    for w in scaling.counts:
        r = scaling.runs[w]
        timed = r.frames - r.frames_at_join
        eff = efficiency(one.scaled_s, one.frames - one.frames_at_join, r.scaled_s, timed, w)
        # Result checks make some frames be done twice (by design, ~5 %): also show the transport's
        # own efficiency, counting those frames as work.
        work = eff * (timed + r.checks * BATCH_SIZE) / timed
        rows.append([f"3. W={w} volunteer{'s' if w > 1 else ''} (1 core each), phone-like H.264",
                     f"T={r.scaled_s:.1f} s, {timed / r.scaled_s:.2f} frames/s, efficiency **{eff:.2f}**"
                     + (f" ({work:.2f} counting re-checked frames as work)" if r.checks else ""),
                     f"median of {scaling.repeats} runs; {timed} frames timed from all joined ({r.all_joined_s or 0:.1f} s after start); "
                     f"{r.checks} validation batches redone"])
    for w in scaling.counts:
        rows.append(requester_share_row(f"W={w}, phone-like H.264 (sampled keyframes travel as they are)", scaling.runs[w]))
    return rows


def scaling_only(args, folder: Path, scale_duration: float, max_workers: int, sample_fps: float) -> list[list[str]]:
    """`--scaling`: rows 3 and 4 alone, for a machine with many cores (no baseline, no memory runs)."""
    _, material, roster = bench_class(args, folder)
    return scaling_rows(run_scaling(material, roster, scale_duration, max_workers, sample_fps, repeats=bench_repeats(args)))


# -- the benchmark ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The bench command's argument parser (standalone use; the CLI adds the same arguments)."""
    parser = argparse.ArgumentParser(prog="p2p-attendance bench", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return parser


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the bench options to `p` (the CLI's `bench` subcommand and build_parser)."""
    p.add_argument("--quick", action="store_true", help="short videos, W up to 2: a smoke run of a minute or two")
    p.add_argument("--faces", type=Path, help="labelled faces folder with enroll/ and probe/ (default ../shared/faces; else the demo's faces)")
    p.add_argument("--max-workers", type=int, help="largest W for the scaling runs (default: the CPU count)")
    p.add_argument("--markdown", type=Path, help="also write the machine and the table to this markdown file")
    p.add_argument("--sample-fps", type=float, default=1.0, help="sampled frames per second of video (default %(default)s)")
    p.add_argument("--duration", type=float, help="seconds of the baseline-vs-project videos (default 60; 10 with --quick)")
    p.add_argument("--scale-duration", type=float, help="seconds of the scaling video (default 180; 16 with --quick)")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--scaling", action="store_true",
                      help="only the scaling runs through the protocol (rows 3 and 4: W = 1, 2, 4, ... up to --max-workers volunteer processes)")
    p.add_argument("--repeats", type=_at_least_one, help="runs of each W in the scaling rows, the median reported (default 3; 1 with --quick)")
    only.add_argument("--accuracy", action="store_true", help="only the accuracy table (composed halls and a real video against the truth and the plain loop)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="composed halls for the accuracy table (default %(default)s)")
    p.add_argument("--hall-duration", type=float, default=20.0, help="seconds of each composed hall (default %(default)s)")
    p.add_argument("--people", type=Path, help="folder of people for the halls (default ../shared/people)")
    p.add_argument("--video", type=Path, help="real video for the accuracy table (default ../shared/videos/facenet-pytorch__video.mp4)")
    p.add_argument("--video-fps", type=float, default=5.0, help="sampled frames per second of that video (default %(default)s)")
    only.add_argument("--simulate", type=int, nargs="+", metavar="N",
                   help="only the swarm simulation: the real requester and N real volunteers whose workers sleep (tools/simulate.py)")
    p.add_argument("--sleep-ms", type=float, default=50.0, help="with --simulate: the stand-in worker's time per frame (default %(default)s)")
    p.add_argument("--frames", type=int, default=200, help="with --simulate: frames of the synthetic video (default %(default)s)")
    p.add_argument("--paths", nargs="+", choices=["jpeg", "h264"], default=["jpeg", "h264"], help="with --simulate: which video paths")
    p.add_argument("--link-mbit", type=float, help="with --simulate: volunteers behind this rate (network namespaces, root only)")
    p.add_argument("--resolution", type=int, choices=[720, 1080], default=720,
                   help="with --simulate: the synthetic video's height (1080: a grained 1920x1080 picture, frames as heavy as a hall's)")


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the benchmark; the exit status."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """The benchmark for parsed options (see add_arguments); prints the table, returns 0."""
    if args.simulate:
        from p2p_attendance.tools.simulate import simulate

        return simulate(args.simulate, args.sleep_ms, args.frames, args.paths, args.link_mbit, resolution=args.resolution)
    # Single-threaded BLAS like the app's one-process-per-core workers; only effective before
    # numpy is first imported (benchmarks/bench.py sets it before any import).
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    quick = args.quick
    duration = args.duration or (10.0 if quick else 60.0)
    scale_duration = args.scale_duration or (16.0 if quick else 180.0)
    max_workers = args.max_workers or (os.cpu_count() or 1)
    if quick:
        max_workers = min(max_workers, 2)
    sample_fps = args.sample_fps
    started = time.monotonic()
    machine = machine_lines()
    for line in machine:
        print(line, flush=True)

    folder = Path(tempfile.mkdtemp(prefix="p2p-attendance-bench-"))
    people = args.people or SHARED_PEOPLE
    try:
        table = ""
        if args.scaling:
            table = format_table(["Measure", "Value", "Notes"], scaling_only(args, folder, scale_duration, max_workers, sample_fps))
        elif not args.accuracy:
            rows = _bench(args, folder, duration, scale_duration, max_workers, sample_fps)
            table = format_table(["Measure", "Value", "Notes"], rows)
        if not args.scaling and (args.accuracy or not quick) and people.is_dir():
            accuracy = accuracy_section(folder, args.seeds, args.hall_duration, people, args.video or SHARED_VIDEO, args.video_fps)
            table = (table + "\n\n" if table else "") + "Accuracy (project's job vs the plain face_recognition loop, same sampled frames):\n\n" + accuracy
        elif args.accuracy:
            table = f"no accuracy table: {people} is not present"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    total = time.monotonic() - started
    print()
    print(table)
    print(f"\n(benchmark took {total:.0f} s)")
    if args.markdown:
        text = "\n".join(f"* {line}" for line in machine) + f"\n* Benchmark wall time: {total:.0f} s\n\n" + table + "\n"
        args.markdown.write_text(text, encoding="utf-8")
    return 0


def _say(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def _bench(args, folder: Path, duration: float, scale_duration: float, max_workers: int, sample_fps: float) -> list[list[str]]:
    from p2p_attendance.attendance.tally import tally
    from p2p_attendance.compute.video import probe_video
    from p2p_attendance.job import app_command
    from p2p_attendance.tools.compose import camera_copy

    engine, material, roster = bench_class(args, folder)
    students = roster.as_students()
    rows: list[list[str]] = []
    videos = [("130 px", 130, False), ("55 px dim", 55, True)]
    composed = {}
    for label, width, dim in videos:
        composed[label] = material.video(f"class-{width}", duration, width, dim)
    frames_per_video = probe_video(composed["130 px"][0]).sample_count(sample_fps)
    job_timeout = 120 + 30 * frames_per_video

    # 1. stages
    for label, _, _ in videos:
        video, _ = composed[label]
        _say(f"stages on the {label} video")
        st = time_stages(video, sample_fps, roster, engine, deadline_s=job_timeout)
        parts = st.decode_s + st.detect_s + st.encode_s + st.match_s
        note = f"{st.frames} frames, {st.faces / max(1, st.frames):.1f} faces/frame"
        rows += [
            [f"1. requester: read + JPEG encode, {label}", f"{ms(st.read_encode_s, st.frames)} ms/frame", "FrameProducer's work, per sampled frame"],
            [f"1. decode JPEG, {label}", f"{ms(st.decode_s, st.frames)} ms/frame", note],
            [f"1. detect, {label}", f"{ms(st.detect_s, st.frames)} ms/frame colour, {ms(st.detect_gray_s, st.frames)} ms/frame grey",
             "FaceEngine.detect, upsample 1, whole frame; BatchProcessor searches whole frames on grey, close-ups in colour"],
            [f"1. landmarks + descriptor, {label}", f"{ms(st.encode_s, st.frames)} ms/frame",
             f"FaceEngine.encode, {engine.descriptor_name} descriptor; {ms(st.encode_s, st.faces)} ms/face"],
            [f"1. match, {label}", f"{ms(st.match_s, st.frames)} ms/frame", "match_encodings + resolve_frame_conflicts"],
            [f"1. BatchProcessor.process, {label}", f"{ms(st.process_s, st.frames)} ms/frame",
             f"batches of {BATCH_SIZE}; sum of the stages above: {ms(parts, st.frames)} ms"],
        ]

    # 1b. the requester's decoding: every frame vs the keyframe-aware sampler
    cameras = [("composed MPEG-4, 10 frames/s", composed["130 px"][0])]
    _say("camera-like copies of the 130 px video (H.264, 30 frames/s)")
    clip = min(duration, 20.0)
    cameras.append(("phone-like H.264 30 frames/s, keyframe every 1 s", camera_copy(composed["130 px"][0], folder / "phone.mp4", clip, 30, 0)))
    cameras.append(("x264 defaults 30 frames/s, keyframe every 250 frames, B-frames",
                    camera_copy(composed["130 px"][0], folder / "recorder.mp4", clip, 250, 3)))
    for label, video in cameras:
        old, new, decoded, count = requester_frame_cost(video, sample_fps)
        source = probe_video(video).frame_count
        rows.append([f"1b. requester: decode + JPEG per sampled frame, {label}",
                     f"{1000 * old:.1f} -> **{1000 * new:.1f} ms** ({old / new:.1f}x less)",
                     f"every frame decoded (OpenCV) -> keyframe-aware sampler: {decoded} of {source} frames decoded for {count} samples"])

    # 1c. verified sightings: the teacher's checker against the volunteers, on a 35-student class
    _say("verification cost on a 35-student class")
    cost = verification_cost(folder, engine, duration_s=8.0 if args.quick else 24.0)
    rows.append([f"1c. verified sightings, {cost.students} students ({cost.faces_per_frame:.0f} faces/frame found)",
                 f"**{100 * cost.share(60.0, 1.0):.1f} %** of the volunteers' CPU (lecture: 60 s windows at 1 frame/s); "
                 f"{100 * cost.share(5.0, 1.0):.0f} % on 5 s windows",
                 f"one sighting checked: {1000 * cost.verify_s:.1f} ms (decode + descriptor at its box); "
                 f"volunteers: {1000 * cost.volunteer_s_per_frame:.0f} ms/frame"])

    # 2. baseline vs project
    _say("baseline models and roster")
    baseline = Baseline()
    base_ids, base_matrix, missed = baseline.enroll(material.enroll_dir)
    first_job = None
    project_runs: dict[str, JobRun] = {}
    for label, _, _ in videos:
        video, expected = composed[label]
        info = probe_video(video)
        _say(f"baseline on the {label} video")
        t0 = time.perf_counter()
        results, stage = baseline.run(video, sample_fps, base_ids, base_matrix, deadline_s=job_timeout)
        base_s = time.perf_counter() - t0
        base_students = tally(results, students, info.duration_s)[0]
        _say(f"project job on the {label} video")
        run = run_job(video, roster, sample_fps, workers=1, timeout_s=job_timeout)
        project_runs[label] = run
        first_job = first_job or run
        n = run.frames
        base_fps = len(results) / base_s
        proj_fps = n / run.wall_s
        same, max_diff, differ = compare_attendance(base_students, run.report.students)
        truth_base = truth_misses(base_students, expected)
        truth_proj = truth_misses(run.report.students, expected)
        k = len(results)
        rows += [
            [f"2. baseline stages, {label}",
             f"read {ms(stage['read'], k)} / detect {ms(stage['detect'], k)} / "
             f"landmarks+descriptor {ms(stage['encode'], k)} / match {ms(stage['match'], k)} ms/frame",
             "cv2 reads every frame; HOG upsample 1; 68 points; dlib ResNet, 1 jitter"],
            [f"2. baseline, {label}", f"{base_fps:.2f} frames/s", f"{k} frames in {base_s:.1f} s, one process"],
            [f"2. project (whole job), {label}", f"{proj_fps:.2f} frames/s",
             f"{n} frames in {run.wall_s:.1f} s: AttendanceJob(workers=1).run(), volunteer start-up included"],
            [f"2. project from the first result, {label}", f"{run.steady_fps:.2f} frames/s", f"first result after {run.first_result_s or 0:.1f} s"],
            [f"2. speed-up project / baseline, {label}",
             f"**{proj_fps / base_fps:.2f}x** whole job, {run.steady_fps / base_fps:.2f}x after start-up", "same process count (1 worker)"],
            [f"2. attendance unchanged, {label}", "yes" if same else f"no ({', '.join(differ)})",
             f"max frames_seen difference {max_diff}; "
             f"vs ground truth: baseline {', '.join(truth_base) or 'all right'}, project {', '.join(truth_proj) or 'all right'}"
             + (f"; baseline could not enroll {', '.join(missed)}" if missed else "")],
        ]
    del baseline

    # 3 + 4: scaling through the protocol, on the class as a phone records it
    scaling = run_scaling(material, roster, scale_duration, max_workers, sample_fps, repeats=bench_repeats(args))
    rows += scaling_rows(scaling)
    for label, r in project_runs.items():
        rows.append(requester_share_row(f"W=1, composed MPEG-4 {label} (every sample decoded and sent as JPEG)", r))

    # 5. memory and start-up
    runs, counts, long_video, scale_frames = scaling.runs, scaling.counts, scaling.long_video, scaling.frames
    one = runs[1]
    top = runs[counts[-1]]
    rows.append([f"5. requester peak RSS, W={counts[-1]}", mib(top.rss_peak),
                 f"this process ({mib(top.rss_start)} before the job: it also holds the bench's models), "
                 f"+{mib(top.rss_peak - top.rss_start)} during the job"])
    _say(f"memory: 1 volunteer on {2 * scale_duration:.0f} s of video")
    double_video, _ = material.video("class-double", 2 * scale_duration, 130, False)
    double = run_job(double_video, roster, sample_fps, workers=0, volunteers=1, timeout_s=120 + 60 * scale_frames)
    rows.append(["5. requester peak RSS, 1 volunteer, 1x vs 2x video length",
                 f"{mib(one.rss_peak)} vs {mib(double.rss_peak)}",
                 f"growth during the job +{mib(one.rss_peak - one.rss_start)} ({one.frames} frames) "
                 f"vs +{mib(double.rss_peak - double.rss_start)} ({double.frames} frames)"])
    _say("memory: the app's own run command, 1x and 2x video length")
    env = app_env(folder)
    enrolled = subprocess.run([*app_command(), "enroll", str(material.enroll_dir), "--class", "Bench class"], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    if enrolled.returncode == 0:
        alone = [app_run_peak_rss(v, "Bench class", env, folder / f"report-{k}.json", 120 + 60 * scale_frames)
                 for k, v in enumerate((long_video, double_video))]
        ok = all(code == 0 for _, _, code in alone)
        rows.append(["5. requester alone (`p2p-attendance run --workers 1`), 1x vs 2x video length",
                     f"{mib(alone[0][0])} vs {mib(alone[1][0])}" if ok else "failed",
                     f"peak RSS of the run process only (its volunteer is a child); "
                     f"{scale_frames} vs {2 * scale_frames} frames in {alone[0][1]:.0f} s vs {alone[1][1]:.0f} s"])
    else:
        rows.append(["5. requester alone (`p2p-attendance run`)", "failed", "enrolling the class failed"])
    _say("memory: a volunteer with 4 workers")
    video130, _ = composed["130 px"]
    four = run_job(video130, roster, sample_fps, workers=0, volunteers=1, cores=4, timeout_s=job_timeout, sample_tree=True)
    rows.append(["5. volunteer with 4 workers, peak PSS of its process tree", mib(four.tree_peak),
                 f"volunteer + 4 worker processes (+ multiprocessing helpers), {four.frames} frames"])
    _say("worker start-up")
    ready = worker_ready_times(3)
    rows.append(["5. worker ready (WorkerPool(1) to all_ready)", f"{statistics.median(ready):.2f} s" if ready else "timed out",
                 "median of " + ", ".join(f"{t:.2f}" for t in ready) + " s: spawn, imports, models"])
    if first_job is not None:
        rows.append(["5. job start-up (run() to first result, workers=1)", f"{first_job.first_result_s or 0:.2f} s",
                     "local volunteer process + its worker + first batch"])
    return rows


if __name__ == "__main__":
    sys.exit(main())
