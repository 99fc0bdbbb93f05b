"""The face engine: the only module that imports dlib.

face_recognition's method without the face_recognition package (its metadata pins source dlib):
dlib's HOG frontal-face detector, the 5-point landmark model to align a 150x150 chip, and the
128-d ResNet descriptor, compared by Euclidean distance against a tolerance (0.6 by default).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

ENCODING_SIZE = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25


@dataclass(frozen=True)
class DetectionSettings:
    """How hard the detector looks.

    dlib's HOG window is 80x80 px, so at upsample 0 it misses faces narrower than ~80 px; one
    upsample halves that. Back-row faces in a 1280x720 lecture video are 50-60 px wide, so the
    default is one upsample of the full frame (face_recognition's own default).
    min_score drops the detector's weakest hits: on real faces dlib's score is > 0.5, while its
    well-known false face in scikit-image's astronaut photo scores ~0.1 (docs/architecture.md).
    """

    upsample: int = 1
    min_score: float = 0.3


@dataclass(frozen=True)
class RawFace:
    """One face the detector found: its box, the detector's score and its 128-d descriptor."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    score: float
    encoding: np.ndarray  # (128,) float32


def to_gray(image: np.ndarray) -> np.ndarray:
    """An RGB image's grey levels (a grey image is returned as it is)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


class FaceEngine:
    """Detect, align and encode faces. Build one per process: loading the models takes ~0.2 s."""

    def __init__(self, settings: DetectionSettings | None = None, descriptor: str = "auto"):
        import dlib
        import face_recognition_models as models

        self.settings = settings or DetectionSettings()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self._fast = None
        if descriptor in ("auto", "fast"):
            try:
                from p2p_attendance.compute.fast_descriptor import FastDescriptor

                self._fast = FastDescriptor()
            except Exception:  # the fast path is an optimisation; dlib's own net is the reference
                if descriptor == "fast":
                    raise
                log.debug("fast descriptor unavailable, using dlib's", exc_info=True)
        self._resnet = None
        if self._fast is None:
            self._resnet = dlib.face_recognition_model_v1(models.face_recognition_model_location())
        self.descriptor_name = "fast" if self._fast is not None else "dlib"

    def detect(self, image: np.ndarray, upsample: int | None = None, min_score: float | None = None) -> list[tuple[tuple[int, int, int, int], float]]:
        """Face boxes (left, top, right, bottom), clipped to the image, with detector scores.

        `image` is RGB or grey levels (`to_gray`). On colour, dlib's HOG takes the strongest
        gradient of the three channels: more sensitive to dim, low-contrast faces (on grey, a
        dim 55 px face was missed in a quarter of the close-up searches around it), but a
        whole-frame search costs 1.4x the time and 3x the memory (39 MB against 13 MB for one
        upsampled 720p frame) and found the same faces there (docs/benchmarks.md).
        min_score: keep detections from this score on instead of the settings' (the batch face
        finder takes weaker ones and keeps those the batch confirms, compute/tracking.py).
        """
        up = self.settings.upsample if upsample is None else upsample
        floor = self.settings.min_score if min_score is None else min_score
        image = np.ascontiguousarray(image)  # dlib silently misreads strided views (crops)
        rects, scores, _ = self._detector.run(image, up, 0.0)
        height, width = image.shape[:2]
        found = []
        for rect, score in zip(rects, scores):
            if score < floor:
                continue
            box = (max(rect.left(), 0), max(rect.top(), 0), min(rect.right(), width - 1), min(rect.bottom(), height - 1))
            if box[2] > box[0] and box[3] > box[1]:
                found.append((box, float(score)))
        return found

    def encode(self, rgb: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
        """(len(boxes), 128) float32 descriptors for the given boxes."""
        if not boxes:
            return np.zeros((0, ENCODING_SIZE), np.float32)
        rgb = np.ascontiguousarray(rgb)
        shapes = [self._landmarks(rgb, self._dlib.rectangle(*box)) for box in boxes]
        if self._fast is not None:
            chips = np.stack([self._dlib.get_face_chip(rgb, shape, CHIP_SIZE, CHIP_PADDING) for shape in shapes])
            return np.asarray(self._fast.compute(chips), np.float32)
        return np.array([self._resnet.compute_face_descriptor(rgb, shape) for shape in shapes], np.float32)

    def find_faces(self, rgb: np.ndarray) -> list[RawFace]:
        detections = self.detect(rgb)
        encodings = self.encode(rgb, [box for box, _ in detections])
        return [RawFace(box, score, enc) for (box, score), enc in zip(detections, encodings)]

    def process_frames(self, frames: list[np.ndarray]) -> list[list[RawFace]]:
        """Batch API: many RGB frames in, the faces of each frame out."""
        return [self.find_faces(frame) for frame in frames]
