"""`python -m p2p_attendance.tools.simulate_volunteer SLEEP_MS volunteer-arguments...`: the real
volunteer (`p2p-attendance volunteer ...`: admission, CurveZMQ, its loop, its worker pool) whose
workers sleep SLEEP_MS a frame instead of recognising faces. For `bench --simulate` only: nothing
in the product (no flag, no message from a peer) starts this module; only running it by name does.

The stand-in's answers pass the requester's checks: 4 faces a frame inside a 1280x720 frame,
finite encodings derived from the frame's bytes (a re-check of the same frame gets the same
answer), names and distances that follow from those encodings under the job's own matching rule.
"""
from __future__ import annotations

import functools
import hashlib
import os
import signal
import sys
import time

import numpy as np

SLEEP_ENV = "P2P_ATTENDANCE_SIMULATE_SLEEP_MS"
FACES_PER_FRAME = 4


class StandInProcessor:
    """BatchProcessor's interface; sleeps instead of computing."""

    def __init__(self, sleep_s: float):
        self.sleep_s = sleep_s
        self.job = None

    def start_job(self, job) -> None:
        self.job = job

    def process(self, frames: list[dict], payloads: list[bytes], codec=None, seats=()):
        from p2p_attendance.attendance.model import Face
        from p2p_attendance.compute.batch import BatchOutput
        from p2p_attendance.compute.matching import match_batch

        time.sleep(self.sleep_s * len(frames))
        boxes = [(100 + 250 * i, 200, 200 + 250 * i, 300) for i in range(FACES_PER_FRAME)]
        found = [
            np.random.default_rng(int.from_bytes(hashlib.sha256(payload).digest()[:8], "big")).normal(0.0, 0.09, (FACES_PER_FRAME, 128)).astype(np.float32)
            for payload in payloads
        ]
        # Names follow from the encodings by the job's own rule (per face track), as a real worker's do.
        names = match_batch([boxes] * len(frames), found, self.job.roster_encodings, self.job.roster_ids, self.job.tolerance)
        faces = [[Face(box, sid, round(min(d, 99.0), 6), 1.0) for box, (sid, d) in zip(boxes, frame_names)] for frame_names in names]
        return BatchOutput(faces, b"".join(f.tobytes() for f in found), [], self.sleep_s * len(frames))


def stand_in_main(conn, descriptor: str, memory_limit: int) -> None:
    """A worker process of the stand-in pool: the real worker loop around a StandInProcessor."""
    from p2p_attendance.swarm.workers import serve

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(conn, StandInProcessor(float(os.environ.get(SLEEP_ENV, "50")) / 1000.0), engine=None)


def main(argv: list[str]) -> int:
    """Run the real volunteer CLI with stand-in workers: argv is SLEEP_MS then volunteer arguments."""
    os.environ[SLEEP_ENV] = str(float(argv[0]))  # the worker processes read it
    from p2p_attendance import cli
    from p2p_attendance.swarm import volunteer
    from p2p_attendance.swarm.workers import WorkerPool

    volunteer.WorkerPool = functools.partial(WorkerPool, worker_main=stand_in_main)
    return cli.main(["volunteer", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
