"""Face detectors compared (issue 15, item 4): faces found against faces visible, and CPU seconds
per image, for dlib's HOG (upsample 0/1/2), dlib's CNN (MMOD, the model in face_recognition_models)
and OpenCV's Haar cascade where the installed OpenCV has one (OpenCV 5 moved `CascadeClassifier`
out of the main package; run this module under an OpenCV 4 that ships `cv2.data.haarcascades` to
include it), on three kinds of source:

    python -m p2p_attendance.tools.detectors ../shared/groups [--cnn-upsample 1]
    python -m p2p_attendance.tools.detectors --hall 1 --hall 2 --video ../shared/videos/X.mp4 --frames 4

- Group photos: those of the README table with one number of faces visible. A dlib box counts as
  a face (capped at the faces visible); a Haar box counts only where its centre lies in some dlib
  detector's box on the same photo, the rest are listed as unconfirmed (false or missed by dlib).
- A composed lecture hall (tools/hall.py, 1920x1080, faces 41-120 px): `--frames` frames spread
  over it, scored against the composer's truth: a visible face is found when a box's centre lies
  in it; a box on no visible face is a false box.
- A real video without truth: `--frames` frames spread over it. The reference faces are those the
  plain face_recognition loop finds (HOG upsample 1 on the whole frame) or at least two detectors
  agree on (one box's centre in the other); a box on none of them is unconfirmed.

The CNN takes ~30 s of CPU on a 1024 px photo and longer on a 1080p frame: keep `--frames` small.
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np

Box = tuple[int, int, int, int]


def visible_counts(groups: Path) -> dict[str, int]:
    """{file: faces visible} from the groups folder's README table (rows with one number)."""
    counts = {}
    for line in (groups / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].endswith(".jpg") and re.fullmatch(r"\d+", cells[2]):
            counts[cells[0]] = int(cells[2])
    return counts


def detectors(cnn_upsample: int, cnn: bool = True) -> dict[str, object]:
    """name -> function(rgb) -> boxes (the CNN left out where cnn is False: minutes a 1080p frame)."""
    import cv2
    import dlib
    import face_recognition_models as models

    hog = dlib.get_frontal_face_detector()

    def rect(r) -> Box:
        return (r.left(), r.top(), r.right(), r.bottom())

    found = {f"HOG upsample {up}": (lambda rgb, up=up: [rect(r) for r in hog(rgb, up)]) for up in (0, 1, 2)}
    if cnn:
        mmod = dlib.cnn_face_detection_model_v1(models.cnn_face_detector_model_location())
        found[f"CNN (MMOD) upsample {cnn_upsample}"] = lambda rgb: [rect(d.rect) for d in mmod(rgb, cnn_upsample)]
    if hasattr(cv2, "CascadeClassifier") and hasattr(cv2, "data"):
        haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

        def haar_faces(rgb):
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            return [(x, y, x + w, y + h) for x, y, w, h in haar.detectMultiScale(grey, 1.1, 5, minSize=(24, 24))]

        found[f"OpenCV {cv2.__version__} Haar (frontalface_default)"] = haar_faces
    return found


def _centre_in(box: Box, others: list[Box]) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(o[0] <= cx <= o[2] and o[1] <= cy <= o[3] for o in others)


def _same_face(a: Box, b: Box) -> bool:
    """Two boxes on one face: the centre of either lies in the other."""
    return _centre_in(a, [b]) or _centre_in(b, [a])


PLAIN_LOOP = "HOG upsample 1"  # face_recognition.face_locations' default: the plain loop's detector


def reference_faces(found: dict[str, list[Box]], plain: str = PLAIN_LOOP) -> list[Box]:
    """The faces of one frame without truth: each box of the plain loop's detector, and each box at
    least two detectors agree on; one box per face."""
    faces: list[Box] = []
    for name, boxes in found.items():
        others = [o for other, theirs in found.items() if other != name for o in theirs]
        for box in boxes:
            if (name == plain or any(_same_face(box, o) for o in others)) and not any(_same_face(box, f) for f in faces):
                faces.append(box)
    return faces


def score_frame(boxes: list[Box], faces: list[Box]) -> tuple[int, int]:
    """(faces with a box on them, boxes on no face) for one detector's boxes and one frame's faces
    (the truth's, or the reference)."""
    found = sum(any(_same_face(b, f) for b in boxes) for f in faces)
    stray = sum(not any(_same_face(b, f) for f in faces) for b in boxes)
    return found, stray


def spread(count: int, frames: int) -> list[int]:
    """`frames` frame numbers spread evenly over a video of `count` frames (the middle of each part)."""
    frames = max(1, min(frames, count))
    return [int((k + 0.5) * count / frames) for k in range(frames)]


def read_frames(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """The wanted frame numbers of a video, as RGB (decoded in order; the videos are short)."""
    import av

    out, wanted_set = {}, set(wanted)
    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number in wanted_set:
                out[number] = frame.to_ndarray(format="rgb24")
                if len(out) == len(wanted_set):
                    break
    return out


def compare_frames(images: list[np.ndarray], truth: list[list[Box]] | None, cnn_upsample: int = 1, cnn: bool = True) -> list[list[str]]:
    """Each detector on these frames: table rows of faces found against the truth's visible faces
    (or, without truth, against the reference faces), boxes on no such face, and CPU per frame."""
    boxes: dict[str, list[list[Box]]] = {}
    cpu: dict[str, float] = {}
    for name, detect in detectors(cnn_upsample, cnn).items():
        started = time.process_time()
        boxes[name] = [detect(np.ascontiguousarray(rgb)) for rgb in images]
        cpu[name] = (time.process_time() - started) / max(1, len(images))
    faces = truth if truth is not None else [reference_faces({n: boxes[n][k] for n in boxes}) for k in range(len(images))]
    total = sum(len(f) for f in faces)
    rows = []
    for name in boxes:
        found = stray = 0
        per_frame = []
        for mine, theirs in zip(boxes[name], faces):
            got, extra = score_frame(mine, theirs)
            found, stray = found + got, stray + extra
            per_frame.append(f"{got}/{len(theirs)}")
        rows.append([name, f"{found} / {total} ({100 * found / total:.0f} %)" if total else "0 / 0", ", ".join(per_frame),
                     str(stray), f"{cpu[name]:.2f} s"])
    return rows


def hall_frames(seed: int, people: Path, frames: int, duration_s: float, folder: Path) -> tuple[list[np.ndarray], list[list[Box]]]:
    """`frames` frames of the composed hall of this seed, with the faces visible in each."""
    from p2p_attendance.compute.engine import FaceEngine
    from p2p_attendance.tools.hall import compose_hall

    path = folder / f"hall-{seed}.mp4"
    truth = compose_hall(path, people, FaceEngine(), seed=seed, duration_s=duration_s)
    numbers = spread(len(truth.frames), frames)
    images = read_frames(path, numbers)
    numbers = [n for n in numbers if n in images]  # a frame the decoder did not give back is not scored
    return [images[n] for n in numbers], [list(truth.frames[n].values()) for n in numbers]


def video_frames(path: Path, frames: int) -> list[np.ndarray]:
    """`frames` frames spread over a real video, as RGB."""
    from p2p_attendance.compute.video import probe_video

    numbers = spread(probe_video(path).frame_count, frames)
    images = read_frames(path, numbers)
    return [images[n] for n in numbers if n in images]


def compare(groups: Path, cnn_upsample: int = 1) -> list[list[str]]:
    """Run each detector on the group photos; table rows of faces found, unconfirmed boxes and CPU."""
    import cv2

    visible = visible_counts(groups)
    images = {name: cv2.cvtColor(cv2.imread(str(groups / name)), cv2.COLOR_BGR2RGB) for name in sorted(visible)}
    boxes: dict[str, dict[str, list[Box]]] = {}
    cpu: dict[str, float] = {}
    for name, detect in detectors(cnn_upsample).items():
        boxes[name], started = {}, time.process_time()
        for image_name, rgb in images.items():
            boxes[name][image_name] = detect(np.ascontiguousarray(rgb))
        cpu[name] = (time.process_time() - started) / max(1, len(images))
    dlib_names = [n for n in boxes if not n.startswith("OpenCV")]
    rows = []
    total = sum(visible.values())
    for name in boxes:
        faces, unconfirmed, per_image = 0, 0, []
        for image_name in images:
            mine = boxes[name][image_name]
            if name in dlib_names:
                good = len(mine)
            else:
                confirm = [b for n in dlib_names for b in boxes[n][image_name]]
                good = sum(_centre_in(b, confirm) for b in mine)
                unconfirmed += len(mine) - good
            good = min(good, visible[image_name])
            faces += good
            per_image.append(f"{good}/{visible[image_name]}")
        rows.append([name, f"{faces} / {total} ({100 * faces / total:.0f} %)", ", ".join(per_image),
                     str(unconfirmed) if name not in dlib_names else "-", f"{cpu[name]:.2f} s"])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: print the detector comparison for a groups folder; the exit status."""
    from p2p_attendance.tools.bench import format_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("groups", type=Path, nargs="?", help="a folder of group photos with a README table of faces visible")
    parser.add_argument("--cnn-upsample", type=int, default=1)
    parser.add_argument("--hall", type=int, action="append", default=[], metavar="SEED", help="a composed lecture hall (repeatable)")
    parser.add_argument("--hall-duration", type=float, default=20.0, help="seconds of each composed hall (default %(default)s)")
    parser.add_argument("--people", type=Path, help="people for the halls (default ../shared/people)")
    parser.add_argument("--video", type=Path, action="append", default=[], help="a real video without truth (repeatable)")
    parser.add_argument("--frames", type=int, default=4, help="frames per hall or video, spread over it (default %(default)s)")
    parser.add_argument("--no-cnn", action="store_true", help="leave the CNN out of the hall and video runs (~100 s of CPU a 1080p frame)")
    args = parser.parse_args(argv)
    if args.groups is None and not args.hall and not args.video:
        parser.error("give a groups folder, --hall SEED or --video PATH")
    try:
        import cv2

        cv2.setNumThreads(1)  # one core, like dlib: the CPU columns compare alike (and the machine is shared)
    except AttributeError:
        pass
    if args.groups is not None:
        rows = compare(args.groups, args.cnn_upsample)
        print(format_table(["Detector", "faces found / visible", "per photo", "boxes no dlib detector confirms", "CPU per photo"], rows))
    if args.hall:
        import tempfile

        from p2p_attendance.tools.bench import SHARED_PEOPLE

        folder = Path(tempfile.mkdtemp(prefix="p2p-attendance-detectors-"))
        try:
            for seed in args.hall:
                images, truth = hall_frames(seed, args.people or SHARED_PEOPLE, args.frames, args.hall_duration, folder)
                print(f"\nComposed hall, seed {seed}: {len(images)} frames of 1920x1080, scored against the truth\n", flush=True)
                rows = compare_frames(images, truth, args.cnn_upsample, not args.no_cnn)
                print(format_table(["Detector", "faces found / visible", "per frame", "boxes on no visible face", "CPU per frame"], rows), flush=True)
        finally:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    for path in args.video:
        images = video_frames(path, args.frames)
        size = f"{images[0].shape[1]}x{images[0].shape[0]}" if images else "no frames"
        print(f"\n{path.name}: {len(images)} frames of {size}, against the faces the plain loop or two detectors find\n", flush=True)
        rows = compare_frames(images, None, args.cnn_upsample, not args.no_cnn)
        print(format_table(["Detector", "faces found / reference", "per frame", "unconfirmed boxes", "CPU per frame"], rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
