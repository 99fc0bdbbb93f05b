"""dlib's face descriptor vs FastDescriptor: ms per face, speed ratio, max abs difference.

    OPENBLAS_NUM_THREADS=1 python benchmarks/descriptor_bench.py [--repeat 5]

Same chips for everyone (faces from scikit-image's astronaut and matplotlib's grace_hopper,
plus /work/shared/faces when present), measured in one process, single thread. dlib's time is
``compute_face_descriptor(chip)`` on the already extracted 150x150 chip, i.e. just the network,
like FastDescriptor.compute.
"""

from __future__ import annotations

import os

# Single-threaded BLAS like the app's one-process-per-core workers; must precede numpy import.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import dlib  # noqa: E402
import face_recognition_models  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from p2p_attendance.compute.fast_descriptor import CHIP_SIZE, FastDescriptor  # noqa: E402

SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"


def _images() -> list[Path]:
    paths = []
    spec = importlib.util.find_spec("skimage")
    if spec and spec.origin:
        paths.append(Path(spec.origin).parent / "data" / "astronaut.png")
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.origin:
        paths.append(Path(spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg")
    if SHARED_FACES.is_dir():
        for pattern in ("enroll/*/*.jp*g", "probe/*.jp*g"):
            paths.extend(sorted(SHARED_FACES.glob(pattern)))
    return [p for p in paths if p.exists()]


def _timed(fn, repeat: int) -> float:
    """Best of ``repeat`` runs, seconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    chips, refs = [], []
    for path in _images():
        with Image.open(path) as im:
            img = np.ascontiguousarray(np.asarray(im.convert("RGB")))
        upsample = 1 if img.shape[0] * img.shape[1] <= 1_500_000 else 0
        for rect in det(img, upsample):
            shape = sp(img, rect)
            refs.append(np.array(net.compute_face_descriptor(img, shape)))
            chips.append(dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=0.25))
    chips_arr = np.stack(chips)
    refs_arr = np.stack(refs)
    n = len(chips)
    print(f"{n} faces, {CHIP_SIZE}x{CHIP_SIZE} chips; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")

    # dlib, on the chips themselves (num_jitters=0): the network only.
    def run_dlib():
        return [net.compute_face_descriptor(c) for c in chips]

    chip_refs = np.array(run_dlib())
    t_dlib = _timed(run_dlib, args.repeat) / n
    print(f"dlib (dlib {dlib.__version__}):      {t_dlib * 1e3:7.2f} ms/face")
    print(f"  dlib on chip vs dlib on image: max abs diff {np.abs(chip_refs - refs_arr).max():.2e}")

    backends = ["numpy"]
    if importlib.util.find_spec("onnxruntime"):
        backends.append("onnxruntime")
    for backend in backends:
        fd = FastDescriptor(backend=backend)
        out = fd.compute(chips_arr)
        diff = np.abs(out - refs_arr).max()
        for bs, label in ((1, "one chip per call"), (8, "batches of 8")):
            fd.batch_size = bs
            fd.compute(chips_arr[:bs])  # warm-up
            c0 = time.process_time()
            t = _timed(lambda: fd.compute(chips_arr), args.repeat) / n
            cpu = (time.process_time() - c0) / (args.repeat * n)
            print(
                f"{backend:12s} {label:18s} {t * 1e3:7.2f} ms/face  "
                f"x{t_dlib / t:5.1f} vs dlib  (cpu/wall {cpu / t:.2f})"
            )
        print(f"  {backend}: max abs diff vs dlib {diff:.2e}; load {fd.load_seconds * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
