"""Reading videos: sampling times, decoding only what samples need, and clear errors for files
that are not usable videos."""
import struct

import av
import cv2
import numpy as np
import pytest
from conftest import make_h264

from p2p_attendance.compute.video import FrameSampler, VideoError, decode_keyframe_rgb, probe_video, to_array


def make_video(path, seconds=5, fps=10, size=(160, 120)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for n in range(seconds * fps):
        frame = np.full((size[1], size[0], 3), (n * 10) % 250, np.uint8)  # frame n has brightness 10n
        writer.write(frame)
    writer.release()
    return path


def test_sampling_times_are_seconds_from_the_start(tmp_path):
    info = probe_video(make_video(tmp_path / "v.mp4"))
    assert info.fps == 10 and info.frame_count == 50 and info.duration_s == 5
    sampler = FrameSampler(info, sample_fps=2)
    frames = list(sampler)
    assert [f.index for f in frames] == list(range(10))
    assert [f.time_s for f in frames] == [i * 0.5 for i in range(10)]
    # The frame at 1.5 s is source frame 15, whose brightness is 15.
    assert abs(frames[3].bgr.mean() - 150) < 5  # 1.5 s is source frame 15, brightness 150
    assert [f.index for f in FrameSampler(info, 2, wanted=[7, 2])] == [2, 7]


@pytest.mark.parametrize("gop, b_frames, options", [(30, 0, None), (12, 2, None), (250, 3, None), (30, 0, {"x264-params": "intra-refresh=1"})])
def test_samples_are_exact_frames_of_their_slot_and_cost_few_decodes(tmp_path, gop, b_frames, options):
    # intra-refresh: frames flagged as keyframes that are only partly intra-coded (some cameras)
    path = make_h264(tmp_path / "lecture.mp4", gop=gop, b_frames=b_frames, options=options)
    info = probe_video(path)
    assert info.fps == 30 and info.frame_count == 240
    container = av.open(str(path))
    every_frame = {round(float(f.time) * 30): to_array(f) for f in container.decode(container.streams.video[0])}
    container.close()
    for sample_fps in (1.0, 2.0):
        sampler = FrameSampler(info, sample_fps)
        frames = list(sampler)
        assert [f.index for f in frames] == list(range(info.sample_count(sample_fps)))
        assert sampler.ended_early_at is None
        for f in frames:
            source = round(f.time_s * 30)
            first, end = info.slot(f.index, sample_fps)
            assert first <= source < end  # about every 1/sample_fps seconds
            assert np.array_equal(f.bgr, every_frame[source])  # decoded right, not a damaged guess
        # A subset (resume, a re-check) gets the very same frames.
        again = {f.index: f for f in FrameSampler(info, sample_fps, wanted=[5, 1, 3])}
        assert sorted(again) == [1, 3, 5]
        assert all(np.array_equal(g.bgr, frames[i].bgr) and g.time_s == frames[i].time_s for i, g in again.items())
    one_a_second = FrameSampler(info, 1.0)
    list(one_a_second)
    if options:
        return  # one real keyframe: the others are decoded from it
    if gop == 30:  # a keyframe in every slot: one decode per sample, not 30
        assert one_a_second.decoded == info.sample_count(1.0)
    elif gop == 12:
        assert one_a_second.decoded < info.frame_count / 4
    else:  # one keyframe in the file: decoding runs on, but never restarts from the beginning
        assert one_a_second.decoded <= info.frame_count


def test_a_long_skip_seeks_instead_of_decoding_its_way(tmp_path):
    path = make_h264(tmp_path / "lecture.mp4", frames=30 * 40, gop=30)
    info = probe_video(path)
    sampler = FrameSampler(info, 1.0, wanted=[1, 35])
    assert [f.index for f in sampler] == [1, 35]
    assert sampler.decoded == 2


@pytest.mark.parametrize(
    "content, message",
    [(b"", "Cannot open|Cannot read"), (b"not a video at all" * 100, "Cannot open|Cannot read")],
)
def test_unreadable_video_gives_one_clear_message(tmp_path, content, message):
    path = tmp_path / "lecture.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=message):
        probe_video(path)
    with pytest.raises(VideoError, match="not found"):
        probe_video(tmp_path / "missing.mp4")


def test_a_video_cut_short_stops_early_and_says_where(tmp_path):
    path = make_video(tmp_path / "v.avi", seconds=20)
    info = probe_video(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the recording was interrupted
    sampler = FrameSampler(info, sample_fps=1)
    frames = list(sampler)
    assert 0 < len(frames) < 20
    assert sampler.ended_early_at == len(frames)


@pytest.mark.parametrize("encoder, codec", [("libx264", "h264"), ("libx265", "hevc")])
def test_keyframes_pass_through_and_decode_alone_to_the_same_pixels(tmp_path, encoder, codec):
    path = make_h264(tmp_path / "lecture.mp4", gop=20, b_frames=2, encoder=encoder, options={"x265-params": "log-level=none"} if codec == "hevc" else None)
    info = probe_video(path)
    assert info.codec == codec and info.extradata and info.passthrough_ok  # MP4 keeps the parameter sets apart
    container = av.open(str(path))
    every_frame = {round(float(f.time) * 30): to_array(f, rgb=True) for f in container.decode(container.streams.video[0])}
    container.close()
    sampler = FrameSampler(info, 2.0, passthrough_bytes=4 << 20)
    frames = list(sampler)
    coded = [f for f in frames if f.keyframe is not None]
    assert 0 < len(coded) < len(frames)  # a keyframe every 20 frames: some 15-frame slots have none
    for f in frames:
        source = round(f.time_s * 30)
        rgb = decode_keyframe_rgb(info.codec, info.extradata, f.keyframe) if f.keyframe else f.bgr[:, :, ::-1]
        assert np.array_equal(rgb, every_frame[source])
    assert all(f.bgr is None for f in coded)
    assert sampler.decoded < (len(frames) - len(coded)) * 20  # passed-through keyframes cost no decode
    # Not for an MPEG-4 Part 2 video: its decoders may differ in the last bit between machines.
    assert all(f.keyframe is None for f in FrameSampler(probe_video(make_video(tmp_path / "v.mp4")), 2.0, passthrough_bytes=4 << 20))


@pytest.mark.parametrize("codec, data", [("h264", b"\x00\x00\x00\x01" + bytes(range(256)) * 8), ("h264", b""), ("mpeg4", b"\x00\x00\x01\xb6" * 10)])
def test_a_bad_keyframe_from_the_network_is_refused_not_crashed_on(codec, data):
    with pytest.raises(ValueError):
        decode_keyframe_rgb(codec, None, data)


def test_a_phone_video_recorded_turned_is_read_upright(tmp_path):
    path = make_h264(tmp_path / "portrait.mp4", frames=60, size=(96, 64))
    data = bytearray(path.read_bytes())
    matrix = data.index(b"tkhd") + 44  # the track header's display matrix: a quarter turn
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (64, 96, 90) and not info.passthrough_ok
    frame = next(iter(FrameSampler(info, 1.0, passthrough_bytes=4 << 20)))
    upright = cv2.VideoCapture(str(path)).read()[1]  # OpenCV applies the display matrix itself
    assert frame.keyframe is None and frame.bgr.shape == upright.shape == (96, 64, 3)
    assert np.abs(frame.bgr.astype(int) - upright).mean() < 2


def test_jpeg_size_is_read_without_decoding_and_huge_claims_are_refused():
    import cv2

    from p2p_attendance.compute.video import decode_jpeg_rgb, jpeg_size

    ok, data = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))
    data = data.tobytes()
    assert jpeg_size(data) == (64, 48)
    assert decode_jpeg_rgb(data).shape == (48, 64, 3)
    sof = data.index(b"\xff\xc0")
    huge = data[: sof + 5] + (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big") + data[sof + 9 :]
    with pytest.raises(ValueError, match="at most"):
        decode_jpeg_rgb(huge)
    with pytest.raises(ValueError):
        decode_jpeg_rgb(b"GIF89a....")


def test_full_hd_frames_travel_at_quality_80_and_smaller_ones_at_90():
    # Measured on composed halls (docs/benchmarks.md): at 1920 px wide, quality 80 saves 40 % of
    # the bytes with the same attendance; at 1280 px it cost a status, so smaller frames keep 90.
    from p2p_attendance.compute.batch import JobParams
    from p2p_attendance.compute.engine import DetectionSettings
    from p2p_attendance.compute.video import SampledFrame, VideoInfo, encode_jpeg
    from p2p_attendance.swarm.requester import JobSpec, frame_payload

    params = JobParams([], np.zeros((0, 128), np.float32), 0.6, DetectionSettings())
    rng = np.random.default_rng(3)
    sizes = {}
    for (width, height), quality in (((1920, 1080), 80), ((3840, 2160), 80), ((1280, 720), 90)):
        bgr = cv2.resize(rng.integers(0, 255, (height // 8, width // 8, 3), np.uint8), (width, height))
        spec = JobSpec(VideoInfo("lecture.mp4", 30.0, 300, width, height), 1.0, params)
        entry, payload = frame_payload(SampledFrame(4, 4.0, bgr), spec)
        sent = bgr if width <= 1920 else cv2.resize(bgr, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        assert entry == {"index": 4, "time_s": 4.0} and payload == encode_jpeg(sent, quality)
        sizes[width] = len(payload), len(encode_jpeg(sent, 90))
        spec.jpeg_quality = 95  # a quality asked for is kept
        assert frame_payload(SampledFrame(4, 4.0, bgr), spec)[1] == encode_jpeg(sent, 95)
    assert sizes[1920][0] < 0.8 * sizes[1920][1]
