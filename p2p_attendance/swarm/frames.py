"""The requester's frames as they travel: sampled from the video, made JPEG (or kept as coded
keyframes), packed into batches. One batch iterator (`frame_batches` over `encoded_frames`) serves
the producer thread, which reads the video ahead of demand into a small bounded queue (memory stays
flat in the video's length), and the requester's redo of a quarantined peer's frames. Frames are
decoded and encoded by a few reader threads (compute/frames_parallel.py), in order.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from p2p_attendance.compute.frames_parallel import ParallelFrames
from p2p_attendance.compute.limits import MAX_FRAME_WIDTH
from p2p_attendance.compute.video import FrameSampler, SampledFrame, encode_jpeg, jpeg_quality_for
from p2p_attendance.swarm import protocol as proto
from p2p_attendance.swarm.scheduler import Batch

if TYPE_CHECKING:
    from p2p_attendance.swarm.requester import JobSpec

log = logging.getLogger(__name__)


def passthrough_bytes(spec: JobSpec) -> int:
    """How large a coded keyframe may travel as it is (0: never). Frames wider than
    MAX_FRAME_WIDTH are scaled down first, so theirs are always decoded and re-encoded."""
    fits = spec.info.width <= MAX_FRAME_WIDTH and len(spec.info.extradata or b"") <= proto.MAX_EXTRADATA_BYTES
    return proto.MAX_JPEG_BYTES if spec.keyframes and fits else 0


def sampled_frames(spec: JobSpec, wanted: list[int]) -> FrameSampler:
    """The sampled frames of `wanted` as pictures (or coded keyframes), one reader, in order."""
    return FrameSampler(spec.info, spec.sample_fps, wanted, passthrough_bytes(spec))


def encoded_frames(spec: JobSpec, wanted: list[int]) -> ParallelFrames:
    """The frames of `wanted` as they travel, (entry, payload) in index order, read and encoded by a
    few reader threads (PyAV and cv2.imencode release the GIL); byte for byte what one reader gives."""
    # A lambda, not the function object: tests patch frames.frame_payload to count the encodings.
    return ParallelFrames(spec.info, spec.sample_fps, wanted, lambda frame: frame_payload(frame, spec), passthrough_bytes(spec))


def frame_payload(frame: SampledFrame, spec: JobSpec) -> tuple[dict, bytes]:
    """A sampled frame as it travels: its header entry, and its coded keyframe as the video holds
    it (nothing to do: most samples of a phone's video) or a JPEG, 4K scaled to MAX_FRAME_WIDTH."""
    entry = {"index": frame.index, "time_s": round(frame.time_s, 3)}
    if frame.keyframe is not None:
        return {**entry, "keyframe": True}, frame.keyframe
    import cv2

    bgr = frame.bgr
    scale = min(1.0, MAX_FRAME_WIDTH / spec.info.width)
    if scale < 1.0:
        bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return entry, encode_jpeg(bgr, spec.jpeg_quality or jpeg_quality_for(bgr.shape[1]))


def frame_batches(spec: JobSpec, frames: Iterable[tuple[dict, bytes]]) -> Iterator[tuple[list[dict], list[bytes]]]:
    """Encoded frames (`encoded_frames`), spec.batch_size at a time (the last may be shorter):
    (header entries, payloads). Frames are read only as batches are taken."""
    entries: list[dict] = []
    payloads: list[bytes] = []
    for entry, payload in frames:
        entries.append(entry)
        payloads.append(payload)
        if len(entries) == spec.batch_size:
            yield entries, payloads
            entries, payloads = [], []
    if entries:
        yield entries, payloads


def batch_parts(batch: Batch, spec: JobSpec) -> tuple[list[bytes], dict]:
    """BATCH's raw parts and its codec fields: the decoder's set-up travels with any coded keyframe."""
    if not any(entry.get("keyframe") for entry in batch.frames):
        return batch.payloads, {}
    extradata = spec.info.extradata
    fields = {"codec": spec.info.codec, "extradata": bool(extradata)}
    return ([*batch.payloads, extradata] if extradata else batch.payloads), fields


def frame_size(spec: JobSpec) -> tuple[int, int]:
    """(width, height) of frames as they travel: boxes outside it cannot be true."""
    scale = min(1.0, MAX_FRAME_WIDTH / spec.info.width)
    return (round(spec.info.width * scale) + 1, round(spec.info.height * scale) + 1)  # +1: resize rounding


class FrameProducer(threading.Thread):
    """Decodes sampled frames and packs them into batches ahead of demand."""

    def __init__(self, spec: JobSpec, depth: int, batch_ids=None):
        super().__init__(name="frame-producer", daemon=True)
        self.spec = spec
        self.batch_ids = batch_ids if batch_ids is not None else itertools.count()
        self.out: queue.Queue = queue.Queue(maxsize=depth)
        self.stop_event = threading.Event()
        self.ended_early_at: int | None = None
        self.total = spec.info.sample_count(spec.sample_fps)
        self.error = ""

    def run(self) -> None:
        wanted = [i for i in range(self.total) if i not in self.spec.skip]
        sampler = encoded_frames(self.spec, wanted)
        try:
            for entries, payloads in frame_batches(self.spec, sampler):
                if self.stop_event.is_set():
                    return
                self._put(Batch(next(self.batch_ids), entries, payloads))
            self.ended_early_at = sampler.ended_early_at
        except Exception as exc:  # a decoder crash mid-file: report what was read
            log.exception("reading the video failed")
            self.ended_early_at = -1
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._put(None)

    def _put(self, item) -> None:
        while not self.stop_event.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
