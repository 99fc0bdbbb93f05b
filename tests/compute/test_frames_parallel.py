"""The parallel frame producer: the same bytes as one FrameSampler, in order, with bounded
memory, and one clear error when a reader fails."""
import threading
import time

import av
import numpy as np
import pytest
from conftest import make_h264

from p2p_attendance.compute.frames_parallel import ParallelFrames
from p2p_attendance.compute.video import (
    FrameSampler,
    VideoError,
    encode_jpeg,
    probe_video,
)


def make_mpeg4(path, seconds=60, fps=10, gop=12, b_frames=2, size=(160, 96)):
    """MPEG-4 Part 2 (what OpenCV's writer and the composer make) with B-frames and noise: every
    frame differs, so a wrong frame gives different bytes."""
    rng = np.random.default_rng(2)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.options = {"bf": str(b_frames)}
        for n in range(seconds * fps):
            image = np.full((size[1], size[0], 3), 60 + (n % 150), np.uint8)
            image[:, (n * 2) % size[0] :][:, :6] = 250
            image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def as_sent(frame):
    """What the producer would send, plus the raw pixels: equal outputs mean equal frames."""
    if frame.keyframe is not None:
        return frame.index, frame.time_s, "keyframe", frame.keyframe
    return frame.index, frame.time_s, encode_jpeg(frame.bgr, 90), frame.bgr.tobytes()


SCATTERED = [59, 3, 17, 18, 40, 41, 42, 12, 0, 55]  # a re-check's or a redo's indexes, unsorted
RESUMED = [i for i in range(60) if i % 7 not in (1, 2)]  # a resume: some done, the rest wanted


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel")
    return {
        "mpeg4": make_mpeg4(folder / "mpeg4.avi"),
        "h264 phone": make_h264(folder / "phone.mp4", frames=1200, fps=20, gop=20, size=(160, 96)),
        "h264 long gop + B": make_h264(folder / "screen.mp4", frames=1200, fps=20, gop=250, b_frames=3, size=(160, 96)),
    }


@pytest.mark.parametrize("kind", ["mpeg4", "h264 phone", "h264 long gop + B"])
@pytest.mark.parametrize("wanted", [None, RESUMED, SCATTERED], ids=["all", "resumed", "scattered"])
@pytest.mark.parametrize("threads, chunk", [(2, 4), (3, 8)])  # reader gaps of 4 s (demuxed) and 16 s (seeked)
def test_parallel_readers_give_the_single_threads_bytes(videos, kind, wanted, threads, chunk):
    info = probe_video(videos[kind])
    passthrough = 4 << 20 if kind == "h264 phone" else 0  # keyframes travel coded: the same packets
    serial = [as_sent(f) for f in FrameSampler(info, 1.0, wanted, passthrough)]
    parallel = ParallelFrames(info, 1.0, wanted, as_sent, passthrough, threads=threads, chunk=chunk)
    got = list(parallel)
    assert parallel.threads == min(threads, -(-len(got) // chunk))  # no idle reader for a short list
    assert [g[0] for g in got] == [s[0] for s in serial] == sorted(set(wanted if wanted is not None else range(60)))
    assert got == serial
    assert parallel.ended_early_at is None
    if passthrough:
        assert sum(g[2] == "keyframe" for g in got) == len(got)


def test_results_come_in_index_order_whichever_reader_finishes_first(videos):
    info = probe_video(videos["mpeg4"])

    def uneven(frame):  # the second reader is much faster than the first
        time.sleep(0.02 if (frame.index // 5) % 2 == 0 else 0.0)
        return frame.index

    assert list(ParallelFrames(info, 1.0, None, uneven, threads=2, chunk=5)) == list(range(60))


def test_readers_stay_at_most_a_chunk_ahead_of_a_slow_consumer(videos):
    info = probe_video(videos["mpeg4"])
    produced, lock = [0], threading.Lock()

    def count(frame):
        with lock:
            produced[0] += 1
        return frame.index

    threads, chunk = 3, 4
    ahead = []
    for consumed, _ in enumerate(ParallelFrames(info, 1.0, None, count, threads=threads, chunk=chunk), 1):
        time.sleep(0.01)  # a slow network: the readers fill their queues and wait
        with lock:
            ahead.append(produced[0] - consumed)
    # Each reader holds at most a queue of `chunk` results and one more in its hands.
    assert max(ahead) <= threads * (chunk + 1)
    assert max(ahead) >= threads * chunk - chunk  # they did read ahead (in parallel)


def test_an_error_in_one_readers_range_surfaces_once_after_the_frames_before_it(videos):
    info = probe_video(videos["mpeg4"])

    def fails_at_23(frame):
        if frame.index == 23:
            raise ValueError("JPEG encoding failed at 23")
        return frame.index

    got = []
    parallel = ParallelFrames(info, 1.0, None, fails_at_23, threads=3, chunk=4)  # 23 is reader 2's
    with pytest.raises(ValueError, match="at 23"):
        for index in parallel:
            got.append(index)  # noqa: PERF402 - what came before the error
    assert got == list(range(23))  # what the single thread would have yielded before failing
    assert not [t for t in threading.enumerate() if t.name.startswith("frame-reader-")]


def test_an_unreadable_video_is_one_clear_error(videos, tmp_path):
    info = probe_video(videos["mpeg4"])
    broken = tmp_path / "lecture.avi"
    broken.write_bytes(b"not a video at all" * 1000)
    info = info.__class__(**{**info.__dict__, "path": str(broken)})  # the file changed after the probe
    with pytest.raises(VideoError, match="Cannot open lecture.avi"):
        list(ParallelFrames(info, 1.0, None, as_sent, threads=4, chunk=2))
    assert not [t for t in threading.enumerate() if t.name.startswith("frame-reader-")]


def test_a_video_that_ends_early_stops_where_the_single_thread_stops(tmp_path):
    path = make_mpeg4(tmp_path / "full.mkv", seconds=40)
    info = probe_video(path)
    data = path.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])  # the header still says 40 s
    cut = info.__class__(**{**info.__dict__, "path": str(tmp_path / "cut.mkv")})
    serial = FrameSampler(cut, 1.0)
    expected = [as_sent(f) for f in serial]
    assert serial.ended_early_at is not None and 5 < len(expected) < 40
    parallel = ParallelFrames(cut, 1.0, None, as_sent, threads=3, chunk=3)
    assert list(parallel) == expected
    assert parallel.ended_early_at == serial.ended_early_at


def test_stopping_early_stops_every_reader(videos):
    info = probe_video(videos["mpeg4"])
    frames = iter(ParallelFrames(info, 1.0, None, as_sent, threads=3, chunk=2))
    assert [next(frames)[0] for _ in range(3)] == [0, 1, 2]
    frames.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("frame-reader-")]
