"""Sampled frames read and encoded by several threads at once, handed out in order.

One FrameSampler is one thread: ~4 ms a sampled 720p frame (decode + JPEG), ~20 ms at 1080p,
which caps a teacher's laptop whatever the number of peers (issue 17). FFmpeg's decoders and
`cv2.imencode` release the GIL, so threads scale across cores.

The wanted sample indexes are cut into contiguous chunks of `chunk` indexes, dealt round-robin to
`threads` readers: reader r reads chunks r, r + threads, r + 2 threads... with a container and a
FrameSampler of its own over all its indexes (a gap between its chunks is skipped by seeking or
by demuxing without decoding, as FrameSampler does for any scattered indexes). A sample index
always gives the same frame (video.py's module doc), so the output is the one FrameSampler gives
for the same indexes, byte for byte. The consumer takes a chunk from each reader in turn.

Memory stays flat: each reader's queue holds at most one chunk of encoded results, so a reader is
at most one chunk ahead of the consumer whatever the video's length.

Ends: a reader that meets the end of the file early (a damaged video) or an error marks its
place; readers stop before anything past the earliest such place, the consumer yields every
result before it (as the single thread would) and then stops (`ended_early_at`) or raises that
one error. Closing the iterator early stops every reader.
"""
from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from p2p_attendance.compute.video import FrameSampler, SampledFrame, VideoInfo

T = TypeVar("T")

DEFAULT_CHUNK = 32  # samples a reader reads in a row: 4 batches of 8; each chunk starts with a seek
MAX_DEFAULT_THREADS = 4
_POLL_S = 0.1  # how often a blocked reader or consumer looks whether it should stop


def default_threads() -> int:
    """Readers by default: one per core up to 4, leaving the requester's loop and checker room
    on bigger machines."""
    return max(1, min(MAX_DEFAULT_THREADS, os.cpu_count() or 1))


class _Ended:
    """A reader's last item: the file ended early at `index`, or `error` was raised there."""

    def __init__(self, index: int, error: BaseException | None = None):
        self.index, self.error = index, error


class ParallelFrames(Generic[T]):
    """Iterates encode(frame) for the sampled frames of `wanted` (all samples when None), in index
    order, computed by `threads` reader threads. Same arguments as FrameSampler, plus `encode`,
    which runs on the reader threads (it must be thread-safe: a pure function of the frame)."""

    def __init__(
        self,
        info: VideoInfo,
        sample_fps: float,
        wanted: Iterable[int] | None,
        encode: Callable[[SampledFrame], T],
        passthrough_bytes: int = 0,
        threads: int | None = None,
        chunk: int = DEFAULT_CHUNK,
    ):
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        self.info, self.sample_fps, self.encode = info, sample_fps, encode
        self.passthrough_bytes = passthrough_bytes
        total = info.sample_count(sample_fps)
        self.indexes = sorted(set(wanted)) if wanted is not None else list(range(total))
        self.chunk = chunk
        chunks = max(1, -(-len(self.indexes) // chunk))
        self.threads = max(1, min(threads or default_threads(), chunks))
        self.ended_early_at: int | None = None
        self.decoded = 0  # packets decoded by all readers, for the benchmark
        self._decoded = [0] * self.threads
        self._lock = threading.Lock()
        self._limit: int | None = None  # readers produce nothing past this index (an end or an error)
        self._stop = threading.Event()
        self.queues: list[queue.Queue] = [queue.Queue(maxsize=chunk) for _ in range(self.threads)]

    def reader_indexes(self, reader: int) -> list[int]:
        """The sample indexes reader `reader` reads: its chunks, in order."""
        step = self.chunk * self.threads
        return [i for start in range(reader * self.chunk, len(self.indexes), step) for i in self.indexes[start : start + self.chunk]]

    def __iter__(self) -> Iterator[T]:
        self._stop.clear()
        self._limit, self.ended_early_at = None, None
        self.queues = [queue.Queue(maxsize=self.chunk) for _ in range(self.threads)]
        workers = [threading.Thread(target=self._read, args=(r,), name=f"frame-reader-{r}", daemon=True) for r in range(self.threads)]
        for worker in workers:
            worker.start()
        try:
            for position, index in enumerate(self.indexes):
                reader = (position // self.chunk) % self.threads
                item = self._next(self.queues[reader], workers[reader])
                if isinstance(item, _Ended):
                    if item.error is not None:
                        raise item.error
                    self.ended_early_at = item.index
                    return
                got, result = item
                assert got == index, f"reader order broken: {got} != {index}"
                yield result
        finally:
            self._stop.set()
            for worker in workers:
                worker.join(timeout=5.0)
            self.decoded = sum(self._decoded)

    @staticmethod
    def _next(source: queue.Queue, worker: threading.Thread):
        while True:
            try:
                return source.get(timeout=_POLL_S)
            except queue.Empty:
                if not worker.is_alive() and source.empty():  # a reader always ends with an item: a bug
                    raise RuntimeError(f"{worker.name} stopped without its frames") from None

    def _read(self, reader: int) -> None:
        indexes = self.reader_indexes(reader)
        sampler = FrameSampler(self.info, self.sample_fps, indexes, self.passthrough_bytes)
        position = 0  # into indexes: the next one this reader owes
        frames = iter(sampler)
        try:
            while position < len(indexes) and not self._past_limit(indexes[position]):
                try:
                    frame = next(frames, None)
                    if frame is None:  # the file ended early, at this reader's next index
                        self._end(reader, _Ended(sampler.ended_early_at if sampler.ended_early_at is not None else indexes[position]))
                        return
                    item = (frame.index, self.encode(frame))
                except Exception as exc:  # noqa: BLE001 - an unreadable video, a decoder crash, an encoder error: the consumer raises it
                    self._end(reader, _Ended(indexes[position], exc))
                    return
                self._decoded[reader] = sampler.decoded
                position += 1
                if not self._put(reader, item):
                    return
        finally:
            self._decoded[reader] = sampler.decoded
            frames.close()  # closes the container

    def _past_limit(self, index: int) -> bool:
        with self._lock:
            return self._limit is not None and index > self._limit

    def _end(self, reader: int, ended: _Ended) -> None:
        with self._lock:
            self._limit = ended.index if self._limit is None else min(self._limit, ended.index)
        self._put(reader, ended)

    def _put(self, reader: int, item) -> bool:
        """Blocks while the reader's queue is full (that is the memory bound); False once the
        consumer has stopped."""
        while not self._stop.is_set():
            try:
                self.queues[reader].put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False
