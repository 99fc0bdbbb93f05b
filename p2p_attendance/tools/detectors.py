"""Face detectors compared on real group photos (issue 15, item 4): faces found against faces
visible, and CPU seconds per image, for dlib's HOG (upsample 0/1/2), dlib's CNN (MMOD, the model in
face_recognition_models) and OpenCV's Haar cascade where the installed OpenCV has one (OpenCV 5
moved `CascadeClassifier` out of the main package; run this module under an OpenCV 4 that ships
`cv2.data.haarcascades` to include it).

    python -m p2p_attendance.tools.detectors ../shared/groups [--cnn-upsample 1]

Photos are those of the README table with one number of faces visible. A dlib box counts as a
face (capped at the faces visible); a Haar box counts only where its centre lies in some dlib
detector's box on the same photo, the rest are listed as unconfirmed (false or missed by dlib).
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


def detectors(cnn_upsample: int) -> dict[str, object]:
    """name -> function(rgb) -> boxes."""
    import cv2
    import dlib
    import face_recognition_models as models

    hog = dlib.get_frontal_face_detector()
    cnn = dlib.cnn_face_detection_model_v1(models.cnn_face_detector_model_location())

    def rect(r) -> Box:
        return (r.left(), r.top(), r.right(), r.bottom())

    found = {f"HOG upsample {up}": (lambda rgb, up=up: [rect(r) for r in hog(rgb, up)]) for up in (0, 1, 2)}
    found[f"CNN (MMOD) upsample {cnn_upsample}"] = lambda rgb: [rect(d.rect) for d in cnn(rgb, cnn_upsample)]
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
    parser.add_argument("groups", type=Path)
    parser.add_argument("--cnn-upsample", type=int, default=1)
    args = parser.parse_args(argv)
    rows = compare(args.groups, args.cnn_upsample)
    print(format_table(["Detector", "faces found / visible", "per photo", "boxes no dlib detector confirms", "CPU per photo"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
