"""The demo: a short class video composed from real faces that ship inside pip packages.

- Grace Hopper (matplotlib's sample photo) sits through the whole class, looking down for a while.
- Eileen Collins (scikit-image's astronaut photo; dlib also finds a false face on her suit, which
  the detector's score threshold drops) arrives late but stays for most of it.
- Two people from scikit-image's tiny LFW subset: one is enrolled and never comes; the other is
  a stranger who stays all lecture and must be reported as one unknown person, matched to nobody.
"""
from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from p2p_attendance.compute.video import read_image_rgb
from p2p_attendance.errors import SampleFacesMissing
from p2p_attendance.tools.compose import Appearance, compose_class_video, face_photo

DEMO_CLASS = "Demo class"
DEMO_DURATION_S = 60.0


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SampleFacesMissing(f"the demo's sample faces come with the '{name}' package: pip install 'p2p-attendance[demo]'")
    return Path(next(iter(spec.submodule_search_locations)))


def astronaut_path() -> Path:
    """scikit-image's astronaut photo (a sample face of the demo)."""
    return _package_dir("skimage") / "data" / "astronaut.png"


def grace_hopper_path() -> Path:
    """matplotlib's Grace Hopper photo (a sample face of the demo)."""
    return _package_dir("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg"


def lfw_face(index: int) -> np.ndarray:
    """One 25x25 face of scikit-image's LFW subset, enlarged into a portrait-sized RGB photo."""
    faces = np.load(_package_dir("skimage") / "data" / "lfw_subset.npy")
    gray = (faces[index] * 255).astype(np.uint8)
    big = cv2.resize(gray, (200, 200), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(cv2.cvtColor(big, cv2.COLOR_GRAY2RGB), 80, 80, 80, 80, cv2.BORDER_REPLICATE)


@dataclass
class DemoMaterial:
    """A composed demo class: enrollment photos, the video, each student's expected status."""
    photos_dir: Path  # enrollment photos, one folder per student
    video: Path
    expected: dict[str, str]  # student id -> expected status


def build_demo(folder: Path, engine, face_width: int = 130, duration_s: float = DEMO_DURATION_S) -> DemoMaterial:
    """Compose the demo class in folder: photos to enroll and a class video with its expected statuses."""
    folder.mkdir(parents=True, exist_ok=True)
    grace = read_image_rgb(grace_hopper_path())
    astronaut = read_image_rgb(astronaut_path())
    if grace is None or astronaut is None:
        raise SampleFacesMissing("the sample photos could not be read")
    never_comes, stranger = lfw_face(0), lfw_face(1)

    photos = folder / "photos"
    for name, rgb in (("Grace Hopper", grace), ("Eileen Collins", astronaut), ("Ada Lovelace", never_comes)):
        (photos / name).mkdir(parents=True, exist_ok=True)
        if name == "Eileen Collins":
            # Her portrait only: the suit below holds the detector's well-known false face.
            box = face_photo(rgb, engine).box
            rgb = rgb[: box[3] + (box[3] - box[1]), :]
        cv2.imwrite(str(photos / name / "photo.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    third = duration_s / 3
    appearances = [
        Appearance("grace_hopper", face_photo(grace, engine), 0, 0, duration_s, away=[(third, third + duration_s / 6)]),
        Appearance("eileen_collins", face_photo(astronaut, engine), 1, duration_s / 6, duration_s),
        Appearance("unknown", face_photo(stranger, engine), 2, 0, duration_s),
    ]
    video = compose_class_video(folder / "demo-class.mp4", appearances, duration_s, face_width=face_width)
    expected = {"grace_hopper": "present", "eileen_collins": "present", "ada_lovelace": "absent"}
    return DemoMaterial(photos, video, expected)


def demo_workdir() -> Path:
    """A new temporary folder for the demo's files."""
    return Path(tempfile.mkdtemp(prefix="p2p-attendance-demo-"))
