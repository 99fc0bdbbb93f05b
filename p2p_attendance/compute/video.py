"""Reading a lecture video: sampled frames, decoded with OpenCV, one at a time (memory stays flat)."""
from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_SAMPLE_FPS = 1.0


class VideoError(Exception):
    """The video cannot be used; the message is meant for the teacher."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps

    def sample_count(self, sample_fps: float) -> int:
        """How many frames are sampled at sample_fps (the first one at t = 0)."""
        return max(1, math.ceil(self.duration_s * sample_fps - 1e-9))

    def source_frame(self, sample_index: int, sample_fps: float) -> int:
        return min(self.frame_count - 1, round(sample_index * self.fps / sample_fps))


def probe_video(path: str | os.PathLike) -> VideoInfo:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"Video not found: {path}")
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise VideoError(f"Cannot open {os.path.basename(path)}: not a video, or a format OpenCV cannot read.")
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        ok, _ = capture.read()
        if not ok or fps <= 0 or count <= 0 or width <= 0:
            raise VideoError(f"Cannot read frames from {os.path.basename(path)}: the file is damaged or its codec is unsupported.")
        return VideoInfo(path, float(fps), count, width, height)
    finally:
        capture.release()


def video_fingerprint(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """A cheap content hash (size + first and last MiB) that detects a changed video on resume."""
    digest = hashlib.sha256()
    size = os.path.getsize(path)
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(chunk))
        if size > chunk:
            handle.seek(max(chunk, size - chunk))
            digest.update(handle.read(chunk))
    return digest.hexdigest()[:32]


@dataclass
class SampledFrame:
    index: int
    time_s: float
    bgr: np.ndarray


class FrameSampler:
    """Yields the sampled frames in order, skipping unwanted ones with grab() (no decode).

    `wanted` restricts to some sample indexes (resume). If the file ends early (damaged video),
    iteration stops and `ended_early_at` says at which sample index.
    """

    def __init__(self, info: VideoInfo, sample_fps: float, wanted: Iterable[int] | None = None):
        self.info = info
        self.sample_fps = sample_fps
        self.total = info.sample_count(sample_fps)
        self._wanted = sorted(set(wanted)) if wanted is not None else None
        self.ended_early_at: int | None = None

    def __iter__(self) -> Iterator[SampledFrame]:
        capture = cv2.VideoCapture(self.info.path)
        try:
            position = 0  # the next frame grab() returns
            indexes = self._wanted if self._wanted is not None else range(self.total)
            for index in indexes:
                target = self.info.source_frame(index, self.sample_fps)
                if target - position > 4 * self.info.fps:  # a long skip: seeking beats grabbing
                    capture.set(cv2.CAP_PROP_POS_FRAMES, target)
                    position = target
                ok = True
                while ok and position < target:
                    ok = capture.grab()
                    position += 1
                ok = ok and capture.grab()
                frame = capture.retrieve()[1] if ok else None
                position += 1
                if frame is None:
                    self.ended_early_at = index
                    return
                yield SampledFrame(index, target / self.info.fps, frame)
        finally:
            capture.release()


def encode_jpeg(bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


MAX_DECODED_SIDE = 4096


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, read without decoding it."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[pos + 7 : pos + 9], "big"), int.from_bytes(data[pos + 5 : pos + 7], "big")
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def decode_jpeg_rgb(data: bytes) -> np.ndarray:
    """Decode a JPEG from the network into RGB; raises ValueError on anything that is not one,
    and on one that claims to be huge (a few KB can declare 60000x60000 px: memory exhaustion)."""
    size = jpeg_size(data)
    if size is None or not (0 < size[0] <= MAX_DECODED_SIDE and 0 < size[1] <= MAX_DECODED_SIDE):
        raise ValueError(f"not a JPEG of at most {MAX_DECODED_SIDE} px a side")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a JPEG image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray | None:
    """An image file as RGB, or None when it cannot be read (imread returns None silently)."""
    data = np.fromfile(os.fspath(path), np.uint8)  # fromfile + imdecode also handles non-ASCII paths on Windows
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
