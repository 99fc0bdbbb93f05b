"""Imported once by the forkserver that forks a volunteer's workers (Linux, macOS): the models are
loaded here a single time and the forked workers share those pages copy-on-write, so four
workers cost little more memory than one. Elsewhere (Windows, the frozen bundle) each spawned
worker loads its own engine."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from p2p_attendance.compute.engine import FaceEngine  # noqa: E402

ENGINE = FaceEngine()
