"""The JPEG path's frame producer, frames/s by reader threads (issue 17):
`python benchmarks/producer_bench.py [--seconds 40] [--threads 1 2 4] [--folder DIR]`.

The videos are the real footage of ../shared/videos looped to --seconds, written as a phone does
(H.264, 30 frames/s, a keyframe a second) and as the composer does (MPEG-4 Part 2), at 1280x720
and 1920x1080. Every sample is decoded and JPEG-encoded at quality 90 (keyframes off).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402
import cv2  # noqa: E402

from p2p_attendance.tools.bench import SHARED_VIDEO, format_table, producer_frames_per_s  # noqa: E402


def looped_copy(source: Path, target: Path, size: tuple[int, int], seconds: float, codec: str) -> Path:
    """source's frames, resized, repeated forward and backward (no cut) for `seconds` at 30 frames/s."""
    if target.is_file():
        return target
    with av.open(str(source)) as container:
        frames = [cv2.resize(f.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA) for f in container.decode(video=0)]
    frames += frames[-2:0:-1]
    with av.open(str(target), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.gop_size = 30
        stream.codec_context.thread_count = 1
        if codec == "libx264":
            stream.codec_context.options = {"bf": "0", "preset": "superfast", "crf": "23", "keyint_min": "30", "sc_threshold": "0"}
        else:
            stream.codec_context.bit_rate = 8_000_000 if size[0] > 1280 else 4_000_000
        for n in range(round(seconds * 30)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frames[n % len(frames)], format="rgb24")))
        out.mux(stream.encode(None))
    return target


def python_share(video: Path, sample_fps: float, demux_free: bool = False) -> float:
    """The share of one reader's wall time spent outside the calls that release the GIL (FFmpeg's
    decoder, OpenCV's colour conversion and JPEG encoder; with demux_free, FFmpeg's demuxer too,
    though PyAV holds the GIL for part of it): what threads cannot overlap (Amdahl)."""
    import time

    from p2p_attendance.compute import video as v

    spent = [0.0]

    def timed(function):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spent[0] += time.perf_counter() - t0
        return wrapper

    def planes_then_colour(image, rgb=False, rotation=0):  # to_ndarray's copy holds the GIL: not timed
        return timed(cv2.cvtColor)(image.to_ndarray(), cv2.COLOR_YUV2BGR_I420)

    class TimedDemux:  # the container, with its packets' reading timed
        def __init__(self, container):
            self.container = container

        def __getattr__(self, name):
            return getattr(self.container, name)

        def demux(self, *a):
            packets = self.container.demux(*a)
            while True:
                packet = timed(next)(packets, None)
                if packet is None:
                    return
                yield packet

    opened = v._open

    def open_timed(path):
        container, stream = opened(path)
        return TimedDemux(container), stream

    if demux_free:
        v._open = open_timed
    decode, to_array = v._VideoDecoder._decode, v.to_array
    v._VideoDecoder._decode, v.to_array = timed(decode), planes_then_colour
    encode = timed(v.encode_jpeg)
    try:
        info = v.probe_video(video)
        t0 = time.perf_counter()
        for frame in v.FrameSampler(info, sample_fps):
            encode(frame.bgr, 90)
        total = time.perf_counter() - t0
    finally:
        v._VideoDecoder._decode, v.to_array, v._open = decode, to_array, opened
    return 1 - spent[0] / total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--sample-fps", type=float, default=1.0)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--folder", type=Path, default=Path("/tmp/producer-bench"))
    p.add_argument("--source", type=Path, default=SHARED_VIDEO, help="footage to loop (default %(default)s)")
    args = p.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, size in (("720p", (1280, 720)), ("1080p", (1920, 1080))):
        for codec, name in (("libx264", "H.264 keyframe/s"), ("mpeg4", "MPEG-4 gop 30")):
            video = looped_copy(args.source, args.folder / f"{label}-{codec}.{'mp4' if codec == 'libx264' else 'avi'}", size, args.seconds, codec)
            most, least = python_share(video, args.sample_fps), python_share(video, args.sample_fps, demux_free=True)
            amdahl = " ".join(f"{n} threads {1 / (most + (1 - most) / n):.1f}-{1 / (least + (1 - least) / n):.1f}x" for n in (2, 4))
            print(f"{label} {name}: {100 * least:.1f}-{100 * most:.1f} % of one reader's time holds the GIL; Amdahl: {amdahl}", flush=True)
            base = None
            for threads in args.threads:
                fps, cpu, count = producer_frames_per_s(video, args.sample_fps, threads)
                base = base or fps
                rows.append([f"{label} {name}", str(threads), f"{fps:.0f}", f"{fps / base:.2f}x", f"{1000 * cpu:.1f}", str(count)])
                print(rows[-1], flush=True)
    print(format_table(["video", "reader threads", "frames/s", "vs 1 thread", "CPU ms/frame", "frames"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
