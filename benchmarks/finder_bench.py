"""The batch face finder against the plain loop on composed halls (issue 15, docs/benchmarks.md):
`python benchmarks/finder_bench.py [--seeds 1 2] [--seconds 16] [--folder /tmp/speed] [--before OLD_tracking.py]`.

Composes each hall once (tools/hall.py, from ../shared/people or $P2P_ATTENDANCE_SHARED/people) and
caches its sampled frames (1 frame/s, sent as JPEG and decoded as a volunteer does). Then, in one
process: the plain loop (HOG upsample 1 on the whole colour frame, dlib's descriptor per face), and
BatchFaceFinder in batches of 8 (and a `--before` copy of compute/tracking.py), CPU per frame and
detections per student (a box whose centre is in the student's true box) against the plain loop's.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pickle
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from p2p_attendance.compute.engine import FaceEngine  # noqa: E402
from p2p_attendance.compute.video import decode_jpeg_rgb, encode_jpeg, jpeg_quality_for  # noqa: E402
from p2p_attendance.tools.hall import compose_hall  # noqa: E402

SHARED = Path(os.environ.get("P2P_ATTENDANCE_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def cached_hall(folder: Path, seed: int, seconds: float, engine) -> tuple[np.ndarray, list[dict]]:
    """(sampled frames as decoded RGB, per frame the visible students' boxes), composed once."""
    folder.mkdir(parents=True, exist_ok=True)
    frames_path, truth_path = folder / f"hall-{seed}-{seconds:g}.npy", folder / f"hall-{seed}-{seconds:g}.pkl"
    if not frames_path.is_file():
        video = folder / f"hall-{seed}-{seconds:g}.mp4"
        truth = compose_hall(video, SHARED / "people", engine, seed=seed, duration_s=seconds)
        samples = truth.sampled(1.0)
        wanted = {truth.frame_index(t): i for i, t, _ in samples}
        frames, capture, k = {}, cv2.VideoCapture(str(video)), 0
        while len(frames) < len(wanted):
            ok, bgr = capture.read()
            if not ok:
                break
            if k in wanted:
                frames[wanted[k]] = decode_jpeg_rgb(encode_jpeg(bgr, jpeg_quality_for(bgr.shape[1])))
            k += 1
        enrolled = {p.id for p in truth.students}
        visible = [{pid: box for pid, box in v.items() if pid in enrolled} for _, _, v in samples]
        np.save(frames_path, np.stack([frames[i] for i in range(len(frames))]))
        truth_path.write_bytes(pickle.dumps(visible))
    return np.load(frames_path), pickle.loads(truth_path.read_bytes())


def seen(visible: dict, boxes) -> set[str]:
    def holds(box, x0, y0, x1, y1):
        return box[0] <= (x0 + x1) / 2 <= box[2] and box[1] <= (y0 + y1) / 2 <= box[3]

    return {pid for pid, box in visible.items() if any(holds(box, *b) for b in boxes)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=16.0)
    p.add_argument("--folder", type=Path, default=Path("/tmp/speed"))
    p.add_argument("--before", type=Path, help="an older compute/tracking.py to compare against")
    args = p.parse_args()
    engine, plain_engine = FaceEngine(), FaceEngine(descriptor="dlib")
    finders = {"now": __import__("p2p_attendance.compute.tracking", fromlist=["BatchFaceFinder"])}
    if args.before:
        spec = importlib.util.spec_from_file_location("tracking_before", args.before)
        finders["before"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(finders["before"])
    for seed in args.seeds:
        frames, visible = cached_hall(args.folder, seed, args.seconds, engine)
        started, plain = time.process_time(), []
        for rgb in frames:
            boxes = [box for box, _ in engine.detect(rgb, upsample=1)]
            plain_engine.encode(rgb, boxes)
            plain.append(seen(visible[len(plain)], boxes))
        plain_cpu = (time.process_time() - started) / len(frames)
        for name, module in finders.items():
            finder, found, started = module.BatchFaceFinder(engine), [], time.process_time()
            for i in range(0, len(frames), 8):
                found += finder.find_batch(list(frames[i : i + 8]))
            cpu = (time.process_time() - started) / len(frames)
            mine = [seen(v, [f.box for f in faces]) for v, faces in zip(visible, found)]
            ratios = {pid: sum(pid in m for m, q in zip(mine, plain) if pid in q) / n for pid in set().union(*plain) if (n := sum(pid in q for q in plain))}
            worst = min(ratios.items(), key=lambda kv: kv[1])
            print(f"seed {seed} {name:6s} CPU/frame {cpu:.3f} s, plain loop {plain_cpu:.3f} s: {plain_cpu / cpu:.1f}x | "
                  f"students under 95 %: {sum(r < 0.95 for r in ratios.values())} of {len(ratios)}, worst {worst[1]:.0%} ({worst[0]}) | "
                  f"faces found {sum(map(len, mine))} (plain {sum(map(len, plain))})", flush=True)


if __name__ == "__main__":
    main()
