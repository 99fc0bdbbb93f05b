"""Bytes per frame against recognition accuracy (issue 17):
`python benchmarks/jpeg_bytes_bench.py [--seeds 1 2] [--seconds 20] [--people DIR]`.

Composed halls (p2p_attendance/tools/hall.py: 1920x1080 phone-like H.264, faces 40-120 px, the
truth known) are sampled once a second. Each sampled frame travels as its coded keyframe (the
passthrough path) or as a JPEG at some quality and resolution (the JPEG path); the volunteers'
pipeline (BatchProcessor) runs on what travelled, its boxes are mapped back to the source's
pixels and scored against the truth: statuses right, and per student the frames seen on their
own face against the reference (the JPEG path as it is: full resolution, quality 90).
The 720p rows treat the hall scaled to 1280x720 as the source video.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from p2p_attendance.tools.bench import (  # noqa: E402
    SHARED_PEOPLE,
    format_table,
    score_sightings,
    sightings_against,
    statuses_right,
)

BATCH = 8
QUALITIES = (90, 80, 70)


def run_volunteer(processor, payloads, times, scale, keyframe_codec=None):
    """FrameResults of the volunteers' pipeline on the payloads, boxes in the source's pixels."""
    from p2p_attendance.attendance.model import Face, FrameResult

    results = []
    for start in range(0, len(payloads), BATCH):
        chunk = payloads[start : start + BATCH]
        entries = [{"token": start + i, **({"keyframe": True} if keyframe_codec else {})} for i in range(len(chunk))]
        out = processor.process(entries, chunk, keyframe_codec)
        for frame in out.frames:
            faces = tuple(Face(tuple(round(v / scale) for v in f["box"]), f["student_id"], f["distance"], f["score"]) for f in frame["faces"])
            results.append(FrameResult(frame["token"], times[frame["token"]], faces))
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--people", type=Path, default=SHARED_PEOPLE)
    p.add_argument("--folder", type=Path, default=Path("/tmp/jpeg-bytes-bench"))
    p.add_argument("--qualities", type=int, nargs="+", default=list(QUALITIES), help="the first is the reference")
    p.add_argument("--sources", nargs="+", default=["1080p", "720p"], choices=["1080p", "720p"])
    args = p.parse_args()
    from p2p_attendance.attendance.tally import tally
    from p2p_attendance.compute.batch import BatchProcessor, JobParams
    from p2p_attendance.compute.engine import DetectionSettings, FaceEngine
    from p2p_attendance.compute.matching import DEFAULT_TOLERANCE
    from p2p_attendance.compute.video import FrameSampler, encode_jpeg, probe_video
    from p2p_attendance.roster.enroll import enroll_folder
    from p2p_attendance.tools.hall import compose_hall

    args.folder.mkdir(parents=True, exist_ok=True)
    engine = FaceEngine()
    rows = []
    for seed in args.seeds:
        path = args.folder / f"hall-{seed}.mp4"
        truth = compose_hall(path, args.people, engine, seed=seed, duration_s=args.seconds)
        roster = enroll_folder(truth.write_enrollment(args.folder / f"hall-{seed}-enroll"), f"Hall {seed}", lambda: engine, root=args.folder / "classes").roster
        ids, matrix = roster.matrix()
        students = roster.as_students()
        expected = truth.expected(1.0)
        info = probe_video(path)
        frames = list(FrameSampler(info, 1.0))
        times = [f.time_s for f in frames]
        processor = BatchProcessor(engine)
        processor.start_job(JobParams(ids, matrix, DEFAULT_TOLERANCE, DetectionSettings()))

        def score(results, truth=truth, ids=ids, students=students, duration_s=info.duration_s, expected=expected):
            sightings = score_sightings(results, truth.visible_at, ids)
            rows_, _, _, _ = tally(results, students, duration_s)
            return sightings, statuses_right(rows_, expected)

        runs = []  # (path, resolution, setting, bytes/frame, results)
        keyframes = [f.keyframe for f in FrameSampler(info, 1.0, passthrough_bytes=4 << 20)]
        if all(k is not None for k in keyframes):
            results = run_volunteer(processor, keyframes, times, 1.0, (info.codec, info.extradata))
            runs.append(("keyframe", "1080p", "as coded", np.mean([len(k) for k in keyframes]), results))
        for label, size in [(label, size) for label, size in (("1080p", None), ("720p", (1280, 720))) if label in args.sources]:
            sources = [f.bgr if size is None else cv2.resize(f.bgr, size, interpolation=cv2.INTER_AREA) for f in frames]
            source_scale = 1.0 if size is None else size[0] / info.width
            for quality in args.qualities:
                payloads = [encode_jpeg(bgr, quality) for bgr in sources]
                results = run_volunteer(processor, payloads, times, source_scale)
                runs.append(("JPEG", label, f"q{quality}", np.mean([len(x) for x in payloads]), results))
                print(f"seed {seed} {label} q{quality}: {runs[-1][3] / 1000:.0f} KB", flush=True)
        reference = {label: score(r)[0] for kind, label, setting, _, r in runs if kind == "JPEG" and setting == f"q{args.qualities[0]}"}
        for kind, label, setting, size_b, results in runs:
            sightings, right = score(results)
            worst, ratio, under, compared = sightings_against(sightings, reference[label], floor=0.9)
            total = sum(sightings.correct.values())
            ref_total = sum(reference[label].correct.values())
            rows.append([str(seed), kind, label, setting, f"{size_b / 1000:.0f} KB", f"{right} of {len(expected)}",
                         f"{total} ({100 * total / max(1, ref_total):.0f} %)", f"{100 * ratio:.0f} % ({worst})" if worst else "n/a",
                         f"{under} of {compared}", str(sightings.phantom + sightings.wrong_face)])
            print(rows[-1], flush=True)
    print(format_table(["seed", "path", "source", "setting", "bytes/frame", "statuses right", f"right sightings (vs q{args.qualities[0]})",
                        f"worst student vs q{args.qualities[0]}", f"students < 90 % of q{args.qualities[0]}", "phantom + wrong-face"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
