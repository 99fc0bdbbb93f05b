"""A volunteer's compute processes: one per offered core, each with its own face engine.

dlib releases no GIL worth having and BLAS threads did not help, so processes, not threads, give
the speed-up. Each worker talks to its volunteer over a multiprocessing Pipe (local, between our
own processes); frames and roster stay in memory. Workers run at the lowest OS priority so a
student's own work on the laptop comes first.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass

from p2p_attendance.compute.limits import MAX_FRAME_PIXELS

# Address space one worker may use. Measured in a forked worker (docs/security.md): 0.55 GB with
# the models loaded; a 1920x1920 frame at upsample 2, the most an honest job asks (the search
# budget, compute/limits.py MAX_UPSAMPLED_PIXELS), peaks at 1.0 GB, 1920x1080 at 0.8 GB. 2 GiB leaves a
# gigabyte of headroom, yet a frame that slips past every check ends its batch (MemoryError) or
# its worker (the pool starts another) long before the laptop swaps.
WORKER_ADDRESS_SPACE_BYTES = 2 * 1024**3
MAX_RESTARTS = 8  # workers started again after dying, per pool: a requester that kills them all is left


def cap_decoded_pixels() -> None:
    """OpenCV reads its decoder's pixel limit once, when cv2 is first imported: call this before
    that in every worker process (the forkserver's preload, a spawned worker's start). Not in the
    app's own process: a teacher's roster photos may well exceed a video frame's size."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_FRAME_PIXELS))


def limit_memory(limit: int = WORKER_ADDRESS_SPACE_BYTES) -> bool:
    """Cap this process's address space (Linux, macOS); False where the platform has no such limit."""
    try:
        import resource
    except ImportError:  # Windows: no RLIMIT_AS
        return False
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
        return True
    except (ValueError, OSError, AttributeError):
        return False


def lower_priority() -> None:
    """Run this process at the lowest CPU priority, so the student's own work comes first."""
    try:
        import psutil

        process = psutil.Process()
        if os.name == "nt":
            process.nice(psutil.IDLE_PRIORITY_CLASS)
        else:
            process.nice(19)
    except Exception:  # a priority we cannot set is not a reason to refuse to help
        pass


def release_freed_memory() -> None:
    """Give memory freed after a batch (upsampled frames, HOG pyramids) back to the OS: glibc
    keeps it otherwise, and a guest on a student's laptop should stay small between batches."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


# Messages between a volunteer (or the requester's checker) and its worker processes. They travel
# pickled over a multiprocessing Pipe between our own processes only, never over the network.
@dataclass(frozen=True)
class StartJob:
    """Pool to worker, when a job starts (and to a worker restarted later): the job's parameters and roster."""

    params: dict
    roster_ids: list
    encodings: bytes


@dataclass(frozen=True)
class RunBatch:
    """Pool to worker: find and recognise the faces of these frames; answered by BatchDone or WorkFailed."""

    token: object
    frames: list  # one entry per frame: {"token": t, "keyframe"?: True}
    payloads: list  # a JPEG per frame, or a coded keyframe where the entry says so
    codec: tuple | None  # (codec name, extradata) when a payload is a coded keyframe
    seats: tuple = ()  # boxes where faces were seen so far in the job (compute/tracking.py)


@dataclass(frozen=True)
class VerifyFrame:
    """Requester's pool to its verifier: descriptors at claimed boxes of one frame; answered by Verified or WorkFailed."""

    token: object
    entry: dict
    payload: bytes
    codec: tuple | None
    boxes: list


@dataclass(frozen=True)
class StopWorker:
    """Pool to worker, on close: leave the loop and exit."""
    pass


@dataclass(frozen=True)
class WorkerReady:
    """Worker to pool, once at start: the models are loaded and it takes work."""
    pass


@dataclass(frozen=True)
class BatchDone:
    """Worker to pool: a RunBatch's result (RESULT's frame entries, encodings, crops, busy time)."""

    token: object
    frames: list  # RESULT's per-frame entries
    encodings: bytes
    crops: list
    busy_s: float


@dataclass(frozen=True)
class Verified:
    """Worker to pool: a VerifyFrame's descriptors, one per box, and the CPU time they took."""

    token: object
    encodings: bytes  # float32 descriptors, one per box
    cpu_s: float


@dataclass(frozen=True)
class WorkFailed:
    """Worker (or the pool, for a dead worker) to its owner: the message with this token failed."""

    token: object
    message: str
    trace: str = ""


def _worker_main(conn, descriptor: str, memory_limit: int = WORKER_ADDRESS_SPACE_BYTES) -> None:
    # Single-threaded BLAS per process: processes scale, threads fight over the same cores.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the volunteer decides when we stop
    cap_decoded_pixels()  # spawned workers import cv2 below; forked ones had it from the preload
    lower_priority()
    from p2p_attendance.compute.batch import BatchProcessor
    from p2p_attendance.compute.engine import FaceEngine

    preloaded = sys.modules.get("p2p_attendance.swarm.preload")
    engine = preloaded.ENGINE if preloaded is not None and descriptor == "auto" else FaceEngine(descriptor=descriptor)
    limit_memory(memory_limit)  # after loading: the limit is for what frames cost
    serve(conn, BatchProcessor(engine), engine)


def serve(conn, processor, engine) -> None:
    """A worker's loop: the messages above, one at a time, until StopWorker or the pipe closes."""
    from p2p_attendance.compute.batch import descriptors_at
    from p2p_attendance.swarm.wire import job_params, result_frames

    conn.send(WorkerReady())
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if isinstance(message, StopWorker):
            return
        if isinstance(message, StartJob):
            processor.start_job(job_params(message.params, message.roster_ids, message.encodings))
        elif isinstance(message, RunBatch):
            try:
                out = processor.process(message.frames, message.payloads, message.codec, message.seats)
                conn.send(BatchDone(message.token, result_frames(message.frames, out.faces), out.encodings, out.crops, out.busy_s))
            except Exception as exc:  # a bad frame fails its batch, never the worker
                conn.send(WorkFailed(message.token, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3)))
            release_freed_memory()
        elif isinstance(message, VerifyFrame):  # the requester's verifier: descriptors at claimed boxes of one frame
            started = time.process_time()
            try:
                found = descriptors_at(engine, message.entry, message.payload, message.codec, message.boxes)
                conn.send(Verified(message.token, found.astype("float32").tobytes(), time.process_time() - started))
            except Exception as exc:
                conn.send(WorkFailed(message.token, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3)))


def worker_context(preload: bool = True):
    """forkserver with the models preloaded where it exists (shared model pages); spawn elsewhere.
    Never plain fork: it would copy the volunteer's ZeroMQ and Qt threads' state."""
    if "forkserver" in multiprocessing.get_all_start_methods() and not getattr(sys, "frozen", False):
        ctx = multiprocessing.get_context("forkserver")
        if preload:
            ctx.set_forkserver_preload(["p2p_attendance.swarm.preload"])
        return ctx
    return multiprocessing.get_context("spawn")


@dataclass
class _Slot:
    process: multiprocessing.Process
    conn: object
    ready: bool = False
    busy_with: object = None


class WorkerPool:
    """N worker processes; the owner thread hands out batches and polls for results."""

    def __init__(self, count: int, descriptor: str = "auto", memory_limit: int = WORKER_ADDRESS_SPACE_BYTES, worker_main=_worker_main):
        # worker_main: what a worker process runs; only the simulation (tools/) starts another one
        self._ctx = worker_context(preload=worker_main is _worker_main)
        self._worker_main = worker_main
        self._worker_args = (descriptor, memory_limit)
        self._job: tuple | None = None  # the current job, for a worker started again
        self.restarts = 0
        self._failed: list[WorkFailed] = []  # work whose hand-over failed, reported by the next poll()
        self.slots: list[_Slot] = [self._start_worker() for _ in range(count)]
        self.started_at = time.monotonic()

    def _start_worker(self) -> _Slot:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=self._worker_main, args=(child, *self._worker_args), daemon=True)
        process.start()
        child.close()
        if self._job is not None:
            parent.send(self._job)
        return _Slot(process, parent)

    def __len__(self) -> int:
        return len(self.slots)

    def start_job(self, params: dict, roster_ids: list[str], encodings: bytes) -> None:
        self._job = StartJob(params, roster_ids, encodings)
        for slot in self.slots:
            slot.conn.send(self._job)

    def idle_slot(self) -> _Slot | None:
        """A live worker that is ready and free. Not one still loading its models: it reads no pipe
        until then, so handing it a batch larger than the pipe's buffer would block the volunteer's
        loop (no heartbeats, stop unheard) for as long as it loads, or for ever if it hangs."""
        return next((s for s in self.slots if s.ready and s.busy_with is None and s.process.is_alive()), None)

    def submit(self, slot: _Slot, token, frames: list[dict], payloads: list[bytes], codec: tuple | None = None, seats: tuple = ()) -> None:
        """payloads: a JPEG per frame, or a coded keyframe where frames[i]["keyframe"]; codec:
        (codec name, extradata) for those; seats: where faces were seen so far in the job (compute/tracking.py)."""
        self._hand_over(slot, token, RunBatch(token, frames, payloads, codec, seats))

    def submit_verify(self, slot: _Slot, token, entry: dict, payload: bytes, codec, boxes: list) -> None:
        """Descriptors at `boxes` of one frame; answered by poll() as Verified (or WorkFailed)."""
        self._hand_over(slot, token, VerifyFrame(token, entry, payload, codec, boxes))

    def _hand_over(self, slot: _Slot, token, message) -> None:
        slot.busy_with = token
        try:
            slot.conn.send(message)
        except (OSError, ValueError):  # the worker died since it was picked: the work fails, the loop goes on
            slot.busy_with = None
            self._failed.append(WorkFailed(token, "worker process died"))

    def alive(self) -> bool:
        return any(s.process.is_alive() for s in self.slots)

    def fileno_list(self) -> list[int]:
        """The live workers' pipes: poll them with the volunteer's socket instead of spinning. A dead
        worker's pipe is at its end, always readable: polled, it would wake the loop at once, forever
        (poll() still notices the death and its unfinished batch within IDLE_WAKE_S)."""
        return [slot.conn.fileno() for slot in self.slots if not slot.conn.closed and slot.process.is_alive()]

    def busy(self) -> bool:
        """Whether any worker has a batch or a frame to answer for."""
        return any(slot.busy_with is not None for slot in self.slots)

    def poll(self) -> list[BatchDone | Verified | WorkFailed]:
        """Finished work since the last call."""
        out, self._failed = self._failed, []
        for slot in self.slots:
            try:
                while slot.conn.poll():
                    message = slot.conn.recv()
                    if isinstance(message, WorkerReady):
                        slot.ready = True
                    else:
                        slot.busy_with = None
                        out.append(message)
            except (EOFError, OSError):
                pass
            if slot.busy_with is not None and not slot.process.is_alive():
                out.append(WorkFailed(slot.busy_with, "worker process died"))
                slot.busy_with = None
        for position, slot in enumerate(self.slots):
            if not slot.process.is_alive() and slot.busy_with is None and self.restarts < MAX_RESTARTS:
                self.restarts += 1  # e.g. one frame took it past its memory limit: the next may be fine
                slot.conn.close()
                self.slots[position] = self._start_worker()
        return out

    def all_ready(self) -> bool:
        return all(s.ready for s in self.slots)

    def wait_ready(self, timeout_s: float, stop=None) -> bool:
        """Wait until every live worker said it is ready (models loaded), stop is set or timeout_s
        passed since the pool started (a pool that never got ready costs one wait, not one per
        reconnect), reading their pipes (no spinning); whether all are ready."""
        deadline = self.started_at + timeout_s
        while not all(s.ready for s in self.slots if s.process.is_alive()) and not (stop is not None and stop.is_set()):
            left = deadline - time.monotonic()
            if left <= 0 or not self.alive():
                break
            pipes = [s.conn for s in self.slots if not s.conn.closed and s.process.is_alive() and not s.ready]
            multiprocessing.connection.wait(pipes, min(0.25, left))  # 0.25 s: how soon stop is noticed
            self.poll()
        return self.all_ready()

    def close(self) -> None:
        for slot in self.slots:
            try:
                slot.conn.send(StopWorker())
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 3
        for slot in self.slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
            slot.conn.close()
