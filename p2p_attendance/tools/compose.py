"""Composing class videos from face photos: people take seats, arrive, look away and leave on a
schedule. Used by the demo, the tests and the benchmarks (ground truth known by construction)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

FRAME_SIZE = (1280, 720)


@dataclass
class FacePhoto:
    """A photo and the box (left, top, right, bottom) of the face to cut out of it."""

    rgb: np.ndarray
    box: tuple[int, int, int, int]


@dataclass
class Appearance:
    """One person in a composed video: their photo, seat, when they are there and when they look away."""
    label: str  # who this is (a student id, or "unknown")
    photo: FacePhoto
    seat: int
    start_s: float
    end_s: float
    away: list[tuple[float, float]] = field(default_factory=list)  # intervals looking down / out

    def visible(self, t: float) -> bool:
        return self.start_s <= t < self.end_s and not any(a <= t < b for a, b in self.away)


def face_photo(rgb: np.ndarray, engine, face_index: int = 0) -> FacePhoto:
    """The face_index-th face from the left in rgb, located with the engine."""
    boxes = sorted((box for box, _ in engine.detect(rgb)), key=lambda b: b[0])
    if face_index >= len(boxes):
        raise ValueError(f"photo has {len(boxes)} faces, wanted #{face_index}")
    return FacePhoto(rgb, boxes[face_index])


def _tile(photo: FacePhoto, face_width: int) -> np.ndarray:
    """Head and shoulders around the face, scaled so the face is face_width px wide."""
    left, top, right, bottom = photo.box
    w, h = right - left, bottom - top
    height, width = photo.rgb.shape[:2]
    x0, x1 = max(0, int(left - 0.45 * w)), min(width, int(right + 0.45 * w))
    y0, y1 = max(0, int(top - 0.6 * h)), min(height, int(bottom + 0.9 * h))
    crop = photo.rgb[y0:y1, x0:x1]
    scale = face_width / w
    return cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def seat_centres(count: int, face_width: int, size=FRAME_SIZE) -> list[tuple[int, int]]:
    """Seats spread evenly over as few rows as tiles of this face size allow."""
    per_row = max(1, min(count, int(size[0] // (face_width * 2.1))))
    rows = -(-count // per_row)
    return [(int((col + 0.5) * size[0] / per_row), int((row + 0.5) * size[1] / rows)) for row in range(rows) for col in range(per_row)][:count]


def compose_class_video(
    path: str | os.PathLike,
    appearances: list[Appearance],
    duration_s: float,
    fps: float = 10.0,
    face_width: int = 130,
    dim: bool = False,
    size=FRAME_SIZE,
    seed: int = 7,
) -> Path:
    """Write an MP4 (mp4v) class video; dim=True darkens it and adds sensor noise."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    seats = max(a.seat for a in appearances) + 1 if appearances else 1
    centres = seat_centres(seats, face_width, size)
    tiles = [_tile(a.photo, face_width) for a in appearances]
    backdrop = np.tile(np.linspace(170, 120, size[1], dtype=np.float32)[:, None, None], (1, size[0], 3))
    backdrop[..., 2] *= 0.85  # a warm wall
    # Fixed-pattern sensor noise: realistic, and it keeps the file small (it does not change per frame).
    noise = rng.normal(0, 4, (size[1], size[0], 1)).astype(np.float32) if dim else None
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MP4 video on this system")
    try:
        for n in range(int(round(duration_s * fps))):
            t = n / fps
            frame = backdrop.copy()
            for appearance, tile in zip(appearances, tiles):
                if appearance.visible(t):
                    cx, cy = centres[appearance.seat]
                    _paste(frame, tile, cx, cy)
            if noise is not None:  # a dim room: darker, flatter, noisier
                frame = frame * 0.45 + noise
            writer.write(cv2.cvtColor(np.clip(frame, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def _paste(frame: np.ndarray, tile: np.ndarray, cx: int, cy: int) -> None:
    h, w = tile.shape[:2]
    x0, y0 = cx - w // 2, cy - int(h * 0.4)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if fx1 > fx0 and fy1 > fy0:
        frame[fy0:fy1, fx0:fx1] = tile[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]


def labelled_class(
    faces_dir: str | os.PathLike, engine, stranger: np.ndarray, duration_s: float = 120.0
) -> tuple[list[Appearance], dict[str, dict]]:
    """A class built from a labelled face folder (enroll/ + probe/, as in the team's shared faces):
    late arrival, early leaver, a long look-down, a student who never comes, and a stranger (an
    RGB photo of someone not enrolled) who stays. Returns the appearances and the expected
    attendance per student id."""
    probe = Path(faces_dir) / "probe"

    def photo(name: str, index: int = 0) -> FacePhoto:
        from p2p_attendance.compute.video import read_image_rgb

        rgb = read_image_rgb(probe / name)
        if rgb is None:
            raise FileNotFoundError(probe / name)
        return face_photo(rgb, engine, index)

    d = duration_s
    appearances = [
        Appearance("alex_lacamoire", photo("alex_lacamoire1.jpg"), 0, 0, d, away=[(0.375 * d, 0.58 * d)]),
        Appearance("kit_harington", photo("johnsnow_test1.jpg"), 1, d / 3, d),  # arrives late
        Appearance("obama", photo("obama1.jpg"), 2, 0, 0.29 * d),  # leaves early
        Appearance("biden", photo("two_people.jpg", 1), 3, 0, d),
        Appearance("unknown", face_photo(stranger, engine), 4, 0, d),  # a stranger, all lecture
    ]
    expected = {
        "alex_lacamoire": {"status": "present", "first": 0.0, "last": d},
        "kit_harington": {"status": "present", "first": d / 3, "last": d},
        "obama": {"status": "absent", "first": 0.0, "last": 0.29 * d},
        "biden": {"status": "present", "first": 0.0, "last": d},
        "rose_leslie": {"status": "absent", "first": None, "last": None},  # never comes
    }
    return appearances, expected


def camera_copy(source: Path, target: Path, seconds: float, gop: int, b_frames: int, fps: int = 30) -> Path:
    """The composed video as a camera or screen recorder would store it: H.264 at `fps`, with
    sensor noise that changes every frame (a composed video repeats identical frames, which decode
    almost for free). At 30 frames/s, gop 30 without B-frames is a phone; gop 250 with B-frames is
    x264's default (screen recorders)."""
    import av

    capture = cv2.VideoCapture(str(source))
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    container = av.open(str(target), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), "yuv420p"
    stream.codec_context.gop_size = gop
    stream.codec_context.options = {"bf": str(b_frames), "preset": "veryfast", "crf": "23", "keyint_min": str(gop), "sc_threshold": "0"}
    rng = np.random.default_rng(5)
    noise = [rng.integers(0, 4, (stream.height, stream.width, 3), dtype=np.uint8) for _ in range(7)]
    frame, have = None, -1
    for n in range(int(seconds * fps)):
        while have < int(n * source_fps / fps):  # each source frame shown fps / source_fps times
            ok, frame = capture.read()
            have += 1
        noisy = cv2.add(frame, noise[n % len(noise)])
        for packet in stream.encode(av.VideoFrame.from_ndarray(noisy, format="bgr24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    capture.release()
    return target
