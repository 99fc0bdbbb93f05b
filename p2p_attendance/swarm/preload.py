"""Imported once by the forkserver that forks a volunteer's workers (Linux, macOS): the models are
loaded here a single time and the forked workers share those pages copy-on-write, so four
workers cost little more memory than one. Elsewhere (Windows, the frozen bundle) each spawned
worker loads its own engine."""
import gc
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
from p2p_attendance.swarm.workers import cap_decoded_pixels, release_freed_memory  # noqa: E402  (no cv2 there)

cap_decoded_pixels()  # before cv2 is first imported in the forkserver, whose forks are the workers

import p2p_attendance.compute.batch  # noqa: E402,F401  (with PyAV and OpenCV: shared pages too)
from p2p_attendance.compute.engine import FaceEngine  # noqa: E402

ENGINE = FaceEngine()
# Before the first fork: hand loading's scratch memory (~40 MB) back to the OS, or every worker
# would copy those pages as it reuses them; and keep the garbage collector off the loaded objects,
# whose pages it would otherwise write to (and so copy) in each worker.
gc.collect()
release_freed_memory()
gc.freeze()
