"""Reading videos: sampling times, and clear errors for files that are not usable videos."""
import cv2
import numpy as np
import pytest

from p2p_attendance.compute.video import FrameSampler, VideoError, probe_video


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
