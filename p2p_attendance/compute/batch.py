"""Turning a batch of frames into per-frame faces, typed (the wire layer above puts them in a RESULT).

Runs inside a volunteer's worker process; holds the roster in memory only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from p2p_attendance.attendance.model import Face
from p2p_attendance.compute.engine import DetectionSettings, FaceEngine
from p2p_attendance.compute.limits import COPIED_HELD_BYTES, MAX_FACES_PER_FRAME, MAX_UPSAMPLED_PIXELS
from p2p_attendance.compute.matching import TRACK_SLACK, match_batch_tracks, match_encodings, tracks_on_one_draw
from p2p_attendance.compute.tracking import BatchFaceFinder
from p2p_attendance.compute.video import decode_jpeg_rgb, decode_keyframe_rgb

CROP_SIZE = 80


@dataclass
class JobParams:
    """What a job asks of every frame: the roster to match against, the tolerance, detection settings."""

    roster_ids: list[str]
    roster_encodings: np.ndarray  # (rows, 128) float32
    tolerance: float
    settings: DetectionSettings


@dataclass
class BatchOutput:
    """One batch's answer: typed faces per frame, their encodings, crops and the CPU it took."""

    faces: list[list[Face]]  # per frame, in the order given
    encodings: bytes  # float32, 128 per face, in order
    crops: list[bytes]  # one small JPEG per face, in order
    busy_s: float


class BatchProcessor:
    """A worker's face work on batches of frames: decode, find faces per batch, encode, match per track."""

    def __init__(self, engine: FaceEngine | None = None):
        self.engine = engine or FaceEngine()
        self.finder = BatchFaceFinder(self.engine)
        self.job: JobParams | None = None

    def start_job(self, job: JobParams) -> None:
        self.job = job
        self.engine.settings = job.settings

    def process(self, frames: list[dict], payloads: list[bytes], codec: tuple[str, bytes | None] | None = None,
                seats: tuple[tuple[int, int, int, int], ...] = ()) -> BatchOutput:
        """payloads: a JPEG per frame, or a coded keyframe where the frame's entry says "keyframe"
        (codec = (name, extradata) for those); seats: where faces were seen so far in the job (tracking.py)."""
        assert self.job is not None, "start_job first"
        started = time.process_time()
        out_faces, encodings, crops = [], [], []

        def image(entry: dict, payload: bytes) -> np.ndarray:
            rgb = decode_payload(entry, payload, codec)
            check_search_size(rgb, self.job.settings.upsample)
            return rgb

        images = (image(entry, payload) for entry, payload in zip(frames, payloads))  # decoded one at a time
        kept, surroundings, held_bytes = [], [], 0
        latest: set[tuple[int, int]] = set()  # (frame, face) held only as its descriptor's latest copy
        for rgb, faces in self.finder.iter_batch(images, seats):
            # A packed lecture hall may show more faces than a RESULT carries: keep the surest.
            faces = sorted(faces, key=lambda f: -f.score)[:MAX_FACES_PER_FRAME]
            crops += [face_crop_jpeg(rgb, face.box) for face in faces]
            encodings.append(np.array([f.encoding for f in faces], np.float32).reshape(-1, 128))
            # Faces whose descriptor the finder copied from the frame before keep their surroundings
            # for a descriptor of their own (below): those that match nobody on it in case their
            # track names them, the others while they are the latest copy (a second look).
            held, source_of = {}, {}
            if len(encodings) > 1:
                for i, row in enumerate(encodings[-1]):
                    same = np.flatnonzero((encodings[-2] == row).all(axis=1))
                    if len(same):
                        source_of[i] = int(same[0])
            own = match_encodings(encodings[-1][list(source_of)], self.job.roster_encodings, self.job.roster_ids, self.job.tolerance)
            for (i, source), (student, _) in zip(source_of.items(), own):
                if (len(kept) - 1, source) in latest:  # the copy before this one, held only as the latest
                    latest.remove((len(kept) - 1, source))
                    held_bytes -= surroundings[-1].pop(source)[0].nbytes
                part = _surroundings(rgb, faces[i].box)
                if held_bytes + part[0].nbytes > COPIED_HELD_BYTES:
                    continue
                held[i] = part
                held_bytes += part[0].nbytes
                if student is not None:
                    latest.add((len(kept), i))
            surroundings.append(held)
            kept.append(faces)
        # Identity per face track over the whole batch, not per frame (matching.match_batch).
        boxes = [[f.box for f in faces] for faces in kept]
        matches, track_names = match_batch_tracks(boxes, encodings, self.job.roster_encodings, self.job.roster_ids, self.job.tolerance)
        # The finder copies a face's descriptor to the next frames where the face stays (tracking.py).
        # A copy its track names but that misses the tolerance (and TRACK_SLACK) cost every frame it
        # was copied into (seed 3: one descriptor copied over 3 frames where fresh ones are 0.55-0.58): such
        # faces get a descriptor of their own, and the batch is matched again on the final ones.
        stale = [(f, i) for f, frame in enumerate(matches) for i, (student, _) in enumerate(frame)
                 if student is None and track_names[f][i] is not None and i in surroundings[f]]
        # A track named on one descriptor copied over its frames rests on one draw: a stranger at
        # 0.593 from an absent student, copied over a batch's last 4 frames, was named in all 4
        # (fresh ones there: 0.609, 0.654, 0.670). Its latest copy gets a descriptor of its own.
        stale += [(f, i) for f, i in tracks_on_one_draw(boxes, encodings, track_names) if i in surroundings[f] and (f, i) not in stale]
        # So does every named descriptor copied within TRACK_SLACK of the tolerance, a draw that a
        # second one may well overturn: a stranger at 0.593-0.599 from a student who never came, his
        # two descriptors each copied over 4 frames, was named for a whole batch (a 60 s hall,
        # seed 5; the plain loop's fresh draws named him once in 60 frames).
        stale += [(f, i) for f, i in sorted(latest) if matches[f][i][0] is not None and matches[f][i][1] > self.job.tolerance - TRACK_SLACK
                  and i in surroundings[f] and (f, i) not in stale]
        for f, i in stale:
            image, box = surroundings[f][i]
            encodings[f][i] = self.engine.encode(image, [box])[0]
        if stale:
            self.finder.stats["encoded"] += len(stale)
            self.finder.stats["fresh_for_name"] += len(stale)
            matches, _ = match_batch_tracks(boxes, encodings, self.job.roster_encodings, self.job.roster_ids, self.job.tolerance)
        for faces, frame_matches in zip(kept, matches):
            out_faces.append([
                Face(tuple(int(v) for v in face.box), student_id, float(distance), float(face.score))
                for face, (student_id, distance) in zip(faces, frame_matches)
            ])
        data = np.concatenate(encodings).astype(np.float32).tobytes() if encodings else b""
        return BatchOutput(out_faces, data, crops, time.process_time() - started)


def check_search_size(rgb: np.ndarray, upsample: int) -> None:
    """Each upsample doubles both sides of the image the detector searches (and its HOG pyramid):
    refuse a frame whose search would cost more than an honest job's largest (ValueError)."""
    pixels = rgb.shape[0] * rgb.shape[1] * 4**upsample
    if pixels > MAX_UPSAMPLED_PIXELS:
        raise ValueError(f"{rgb.shape[1]}x{rgb.shape[0]} px at upsample {upsample} is over the search budget ({pixels} > {MAX_UPSAMPLED_PIXELS} px)")


def decode_payload(entry: dict, payload: bytes, codec: tuple[str, bytes | None] | None) -> np.ndarray:
    """A frame as it travelled (a JPEG, or a coded keyframe where its entry says so) as RGB."""
    if entry.get("keyframe"):
        if codec is None:
            raise ValueError("a coded keyframe without its codec")
        return decode_keyframe_rgb(codec[0], codec[1], payload)
    return decode_jpeg_rgb(payload)


def descriptors_at(engine: FaceEngine, entry: dict, payload: bytes, codec, boxes: list) -> np.ndarray:
    """The descriptors at given boxes of one frame: how the teacher's computer checks a claimed
    sighting (one alignment and one descriptor per box, no face search: ~10 ms)."""
    rgb = decode_payload(entry, payload, codec)
    height, width = rgb.shape[:2]
    clipped = [(max(0, left), max(0, top), min(width - 1, right), min(height - 1, bottom)) for left, top, right, bottom in boxes]
    return engine.encode(rgb, clipped)


def _surroundings(rgb: np.ndarray, box) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The part of a frame a face's descriptor is computed from (its box and a face width around:
    the aligned chip reaches a quarter of a width past the landmarks), and the box within it."""
    left, top, right, bottom = box
    pad = right - left
    height, width = rgb.shape[:2]
    x0, y0 = max(0, left - pad), max(0, top - pad)
    part = rgb[y0 : min(height, bottom + pad), x0 : min(width, right + pad)].copy()
    return part, (left - x0, top - y0, right - x0, bottom - y0)


def face_crop_jpeg(rgb: np.ndarray, box) -> bytes:
    """A small JPEG of the face with a margin around it: the evidence the teacher reviews."""
    left, top, right, bottom = box
    pad = (right - left) // 4
    height, width = rgb.shape[:2]
    crop = rgb[max(0, top - pad) : min(height, bottom + pad), max(0, left - pad) : min(width, right + pad)]
    crop = cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return data.tobytes() if ok else b""
