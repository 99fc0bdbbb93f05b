"""`p2p-attendance --self-test`: prove that this copy of the app (from source or the frozen bundle)
can do its job, headless and offline.

It loads the face models, recognises the bundled face photo, composes a 6-second class video from
it, enrolls that face into a throwaway class, and takes attendance on loopback with one local
volunteer process started from this very executable (which in turn starts a spawn-context worker),
then writes an Excel report. Every step is printed with its time; the exit status is 0 when all
passed, 1 with the reason otherwise.

Nothing is written to the user's own folders: a temporary directory stands in for the data,
config, state and cache folders (XDG_* and, on Windows, APPDATA/LOCALAPPDATA) for the duration,
and is removed at the end.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from p2p_attendance.errors import SelfTestFailure
from p2p_attendance.paths import resources_dir

SELFTEST_FACE = "selftest_face.jpg"
STUDENT_ID = "grace_hopper"
VIDEO_SECONDS = 6.0
SAMPLE_FPS = 2.0
JOB_TIMEOUT_S = 240.0
# The loopback job needs no mDNS, but the bundle must still carry these (lazy imports elsewhere).
BUNDLE_MODULES = (
    "zmq",
    "zeroconf",
    "zeroconf.asyncio",
    "onnxruntime",
    "openpyxl",
    "psutil",
    "platformdirs",
    "p2p_attendance.discovery.mdns",
    "p2p_attendance.report.writers",
    "p2p_attendance.swarm.sharing",
)
_USER_DIR_VARS = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "APPDATA", "LOCALAPPDATA")


# -- resources: the same lookup from a source checkout and from the PyInstaller bundle ----------------
def resource_path(name: str) -> Path:
    """A bundled resource file; SelfTestFailure (a packaging error) when it is missing."""
    path = resources_dir() / name
    if not path.is_file():
        raise SelfTestFailure(f"resource {name} not found at {path} (a packaging error: resources/ must be bundled)")
    return path


# -- isolation -------------------------------------------------------------------------------------
@contextmanager
def isolated_environment(root: Path):
    """Point the user folders into root, and make sure a source run's children find the package."""
    saved = {var: os.environ.get(var) for var in (*_USER_DIR_VARS, "PYTHONPATH")}
    try:
        for var in _USER_DIR_VARS:
            folder = root / var.lower()
            folder.mkdir(parents=True, exist_ok=True)
            os.environ[var] = str(folder)
        if not getattr(sys, "frozen", False):
            package_root = str(Path(__file__).resolve().parents[2])
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, saved["PYTHONPATH"]) if p)
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


# -- steps -----------------------------------------------------------------------------------------
class Runner:
    """Runs the self-test's steps, printing each with its time."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def step(self, title: str, action):
        self.say(f"-- {title} ...")
        t0 = time.monotonic()
        try:
            detail = action()
        except SelfTestFailure as exc:
            self.say(f"[FAIL] {title} ({time.monotonic() - t0:.2f} s): {exc}")
            raise
        except Exception as exc:  # anything unexpected is a failure of this step, with its reason
            import traceback

            traceback.print_exc(file=self.out)
            self.say(f"[FAIL] {title} ({time.monotonic() - t0:.2f} s): {type(exc).__name__}: {exc}")
            raise SelfTestFailure(f"{title}: {type(exc).__name__}: {exc}") from exc
        self.say(f"[ ok ] {title} ({time.monotonic() - t0:.2f} s){': ' + detail if detail else ''}")
        return detail


def _check_imports() -> str:
    import importlib

    import zmq

    for name in BUNDLE_MODULES:
        importlib.import_module(name)
    if not zmq.has("curve"):
        raise SelfTestFailure("this libzmq has no CurveZMQ support; jobs could not be encrypted")
    return f"{len(BUNDLE_MODULES)} modules; zmq {zmq.zmq_version()} with CURVE"


def _check_blocked_packages() -> str:
    """The bundle must not carry the test extras (they would add ~100 MB for nothing)."""
    if not getattr(sys, "frozen", False):
        return "skipped (not frozen)"
    import importlib.util

    present = [name for name in ("pytest", "skimage", "matplotlib", "tkinter") if importlib.util.find_spec(name) is not None]
    if present:
        raise SelfTestFailure(f"test-only packages found in the bundle: {', '.join(present)}")
    return "no pytest, scikit-image, matplotlib, tkinter"


class _State:
    engine = None
    rgb = None
    photo = None
    video: Path | None = None
    roster = None
    job = None
    report = None


def _load_models(state: _State) -> str:
    import face_recognition_models as models

    from p2p_attendance.compute.engine import FaceEngine

    for location in (models.pose_predictor_five_point_model_location(), models.face_recognition_model_location()):
        if not Path(location).is_file():
            raise SelfTestFailure(f"model file missing: {location} (a packaging error: the .dat files must be collected as data)")
    state.engine = FaceEngine()
    if state.engine.descriptor_name != "fast":
        try:
            from p2p_attendance.compute.fast_descriptor import FastDescriptor

            FastDescriptor()
        except Exception as exc:
            raise SelfTestFailure(f"the onnxruntime descriptor does not load ({type(exc).__name__}: {exc})") from exc
        raise SelfTestFailure(f"expected the onnxruntime descriptor, got {state.engine.descriptor_name}")
    import onnxruntime

    return f"5-point landmarks + ResNet descriptor via onnxruntime {onnxruntime.__version__}"


def _recognise(state: _State) -> str:
    import numpy as np

    from p2p_attendance.compute.engine import FaceEngine
    from p2p_attendance.compute.video import read_image_rgb
    from p2p_attendance.tools.compose import face_photo

    path = resource_path(SELFTEST_FACE)
    state.rgb = read_image_rgb(path)
    if state.rgb is None:
        raise SelfTestFailure(f"OpenCV cannot read {path}")
    faces = state.engine.find_faces(state.rgb)
    if len(faces) != 1:
        raise SelfTestFailure(f"expected one face in {path.name}, found {len(faces)}")
    # dlib's own network is the reference: the onnxruntime descriptor must agree with it.
    reference = FaceEngine(descriptor="dlib").encode(state.rgb, [faces[0].box])[0]
    gap = float(np.linalg.norm(reference - faces[0].encoding))
    if gap > 1e-3:
        raise SelfTestFailure(f"onnxruntime and dlib descriptors differ by {gap:.2e} (expected < 1e-3)")
    state.photo = face_photo(state.rgb, state.engine)
    return f"1 face at {faces[0].box}, score {faces[0].score:.2f}; matches dlib's descriptor to {gap:.1e}"


def _compose(state: _State, work: Path) -> str:
    from p2p_attendance.tools.compose import Appearance, camera_copy, compose_class_video

    size = (640, 360)
    appearances = [Appearance(STUDENT_ID, state.photo, 0, 0.0, VIDEO_SECONDS)]
    composed = compose_class_video(work / "composed.mp4", appearances, VIDEO_SECONDS, fps=10.0, face_width=110, size=size)
    # As a camera stores it (H.264, a keyframe every 0.8 s): sampled twice a second, some samples
    # are keyframes that travel as they are, the others are decoded and sent as JPEG.
    state.video = camera_copy(composed, work / "class.mp4", VIDEO_SECONDS, gop=8, b_frames=0, fps=10)
    return f"{state.video.name}: {VIDEO_SECONDS:g} s, {size[0]}x{size[1]} H.264, {state.video.stat().st_size // 1024} KB"


def _enroll(state: _State, work: Path) -> str:
    from p2p_attendance.roster.enroll import enroll_folder

    photos = work / "photos"
    photos.mkdir()
    shutil.copyfile(resource_path(SELFTEST_FACE), photos / f"{STUDENT_ID}.jpg")
    # An explicit root as well as the XDG variables: platformdirs ignores those on Windows and macOS.
    classes = Path(os.environ["XDG_DATA_HOME"]) / "p2p-attendance" / "classes"
    result = enroll_folder(photos, "Self-test", lambda: state.engine, root=classes)
    if result.problems or [s.id for s in result.roster.students] != [STUDENT_ID]:
        raise SelfTestFailure(f"enrollment went wrong: students {[s.id for s in result.roster.students]}, problems {result.problems}")
    state.roster = result.roster
    return f"class 'Self-test' with {STUDENT_ID} under the temporary data folder"


def _run_job(state: _State, say) -> str:
    from p2p_attendance.job import AttendanceJob, JobOptions, app_command

    say(f"   local volunteer command: {' '.join(app_command())} volunteer ...")
    from p2p_attendance.roster.join_codes import new_join_code

    # A code of its own: the class's code would land in the real data folder where platformdirs
    # ignores the temporary XDG_DATA_HOME (Windows, macOS).
    wanted = dict(workers=1, listen="tcp://127.0.0.1:0", persistent_key=False, sample_fps=SAMPLE_FPS, checkpoint=False, join_code=new_join_code())
    known = {f.name for f in dataclasses.fields(JobOptions)}
    options = JobOptions(**{k: v for k, v in wanted.items() if k in known})  # no key, no checkpoint on disk
    job = AttendanceJob(state.video, state.roster, options)
    state.job = job
    stop = threading.Event()
    why: list[str] = []

    def watchdog():
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while not stop.wait(0.2):
            volunteer = job.local_volunteer
            if volunteer is not None and volunteer.poll() not in (None, 0):
                why.append(f"the local volunteer process exited with status {volunteer.returncode}")
                stop.set()
            elif time.monotonic() > deadline:
                why.append(f"the job did not finish within {JOB_TIMEOUT_S:.0f} s")
                stop.set()

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    try:
        state.report = job.run(stop)
    finally:
        done_early = stop.is_set()
        stop.set()
        guard.join()
    info = state.report.job
    if why and done_early:
        raise SelfTestFailure(f"{why[0]}; {info.frames_processed}/{info.frames_total} frames processed")
    if not job.finished or info.frames_processed != info.frames_total or info.frames_total == 0:
        raise SelfTestFailure(f"{info.frames_processed}/{info.frames_total} frames processed")
    if job.local_volunteer is None or job.local_volunteer.returncode not in (0, None):
        raise SelfTestFailure(f"the local volunteer ended with status {job.local_volunteer and job.local_volunteer.returncode}")
    peers = ", ".join(f"{p.name}: {p.frames}" for p in info.peers)
    return f"{info.frames_processed}/{info.frames_total} frames in {info.elapsed_s:.1f} s (frames per peer: {peers})"


def _check_result(state: _State) -> str:
    report = state.report
    by_id = {s.id: s for s in report.students}
    student = by_id.get(STUDENT_ID)
    if student is None:
        raise SelfTestFailure(f"{STUDENT_ID} is missing from the report")
    if student.status.lower() != "present":
        raise SelfTestFailure(f"{STUDENT_ID} is {student.status} (seen in {student.frames_seen} frames), expected present")
    if report.unknown_faces:
        raise SelfTestFailure(f"{len(report.unknown_faces)} unknown face(s) reported; expected none")
    if report.job.warnings:
        raise SelfTestFailure(f"job warnings: {report.job.warnings}")
    best = student.best_distance if student.best_distance is None else round(student.best_distance, 3)
    return f"{student.name}: {student.status}, seen in {student.frames_seen} frames, presence {student.presence:.0%}, best distance {best}"


def _write_report(state: _State, work: Path) -> str:
    from p2p_attendance.report import write_reports

    written = write_reports(state.report, xlsx=str(work / "attendance.xlsx"), csv=str(work / "attendance.csv"), json_path=None)
    sizes = ", ".join(f"{Path(p).name} {Path(p).stat().st_size} B" for p in written)
    return sizes


def _check_qt() -> str:
    """The GUI's Qt (offscreen platform plugin) starts, and the GUI package is importable."""
    from p2p_attendance.gui.selfcheck import qt_selfcheck

    try:
        return qt_selfcheck(str(resource_path("icon.png")))
    except RuntimeError as exc:
        raise SelfTestFailure(str(exc)) from exc


# -- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the self-test; 0 when every step passed, 1 otherwise."""
    from p2p_attendance import __version__

    runner = Runner()
    frozen = bool(getattr(sys, "frozen", False))
    runner.say(f"p2p-attendance {__version__} self-test: {'frozen bundle ' + str(Path(sys.executable).parent) if frozen else 'from source'}, "
               f"Python {platform.python_version()}, {platform.system()} {platform.machine()}")
    temp = Path(tempfile.mkdtemp(prefix="p2p-attendance-selftest-"))
    work = temp / "work"
    work.mkdir()
    state = _State()
    try:
        with isolated_environment(temp / "home"):
            runner.step("bundle contents", _check_imports)
            runner.step("no test-only packages", _check_blocked_packages)
            runner.step("load face models", lambda: _load_models(state))
            runner.step("recognise the bundled face", lambda: _recognise(state))
            runner.step("compose a short class video", lambda: _compose(state, work))
            runner.step("enroll a class (temporary data folder)", lambda: _enroll(state, work))
            runner.step("attendance job on loopback, one local volunteer process", lambda: _run_job(state, runner.say))
            runner.step("check the result", lambda: _check_result(state))
            runner.step("write the reports", lambda: _write_report(state, work))
            runner.step("Qt (offscreen) and the GUI modules", _check_qt)
    except SelfTestFailure as exc:
        runner.say(f"self-test FAILED after {time.monotonic() - runner.started:.1f} s: {exc}")
        return 1
    except KeyboardInterrupt:
        runner.say("self-test interrupted")
        return 1
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    runner.say(f"self-test passed in {time.monotonic() - runner.started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
