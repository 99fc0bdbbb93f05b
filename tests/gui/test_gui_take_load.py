"""The Take screen under load: a storm of wrong-code warnings and a 90-minute lecture's worth of
job events, delivered through the JobRunner's signals as a real job delivers them (offscreen)."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import EventLoopProbe  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


@pytest.fixture
def take(qtbot, tmp_path, monkeypatch):
    """The real Take screen (controller and view) with a JobRunner attached, as start() does."""
    from p2p_attendance.gui.runner import JobRunner
    from p2p_attendance.gui.take import TakeController

    monkeypatch.setenv("P2P_ATTENDANCE_SETTINGS", str(tmp_path / "settings.ini"))
    controller = TakeController()
    qtbot.addWidget(controller.view)
    controller.view.resize(1000, 800)
    controller.view.show()
    runner = JobRunner("lecture.mp4", None, None, controller)
    controller.attach_runner(runner)
    yield controller
    controller.timer.stop()


def _storm(take, texts, batch=500):
    """Deliver the warnings on the GUI thread, letting the event loop run every 50; the seconds
    each batch of `batch` warnings took (delivery, model, view and layout)."""
    times = []
    for start in range(0, len(texts), batch):
        began = time.perf_counter()
        for i, text in enumerate(texts[start:start + batch]):
            take.runner.warning.emit(text)
            if i % 50 == 49:
                QApplication.processEvents()
        QApplication.processEvents()
        times.append(time.perf_counter() - began)
    return times


def test_wrong_code_storm_from_50_sources_is_counted_per_source_at_flat_cost(take):
    sources = [f"laptop-{n} (10.0.{n}.7) tried a wrong join code" for n in range(50)]
    texts = [sources[i % 50] for i in range(5_000)]
    times = _storm(take, texts)
    first, last = times[0] / 500 * 1000, times[-1] / 500 * 1000
    print(f"50 sources: first 500 {first:.3f} ms/warning, last 500 {last:.3f} ms/warning")

    model = take.view.warnings_list.model()
    assert model.rowCount() == 50  # one row per source
    shown = [model.data(model.index(row), Qt.ItemDataRole.DisplayRole) for row in range(model.rowCount())]
    assert all(line.endswith(f"{text} ×100") for line, text in zip(shown, sources)), shown[:3]
    assert take.view.warnings_box.title() == "Warnings (5000)"
    assert take.warnings() == sources
    assert last < 3 * first + 0.05, f"a warning cost {first:.3f} ms at first and {last:.3f} ms at the end"


def test_wrong_code_storm_from_3000_addresses_keeps_the_list_bounded_and_cost_flat(take):
    # The attack measured on main: every guess from another address of a /16 LAN, each a new text.
    texts = [f"laptop ({10 + i // 250}.0.{i % 250}.7) tried a wrong join code" for i in range(3_000)]
    times = _storm(take, texts)
    first, last = times[0] / 500 * 1000, times[-1] / 500 * 1000
    print(f"3,000 sources: first 500 {first:.3f} ms/warning, last 500 {last:.3f} ms/warning")

    model = take.view.warnings_list.model()
    assert model.rowCount() == model.MAX_ROWS + 1  # the cap, plus one row counting the rest
    overflow = model.data(model.index(model.MAX_ROWS), Qt.ItemDataRole.DisplayRole)
    assert f"{3_000 - model.MAX_ROWS} more warnings not listed" in overflow
    assert take.view.warnings_box.title() == "Warnings (3000)"
    assert last < 3 * first + 0.05, f"a warning cost {first:.3f} ms at first and {last:.3f} ms at the end"


def _lecture_video(path, seconds):
    """A tiny video `seconds` long at 1 frame/s: the length of a lecture, none of its weight."""
    import av

    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=1)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
    for n in range(seconds):
        frame.pts = n
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.mark.timeout(300)
def test_ninety_minute_lecture_of_job_events_keeps_the_take_screen_responsive(qtbot, take, tmp_path):
    from p2p_attendance.attendance.model import Face, FrameResult
    from p2p_attendance.job import AttendanceJob, JobOptions
    from p2p_attendance.roster.store import ClassRoster, EnrolledPhoto, EnrolledStudent, save_class

    frames_total = 5_400  # 90 minutes at 1 frame/s
    rng = np.random.default_rng(1)
    roster = ClassRoster("Lecture", [
        EnrolledStudent(sid, sid.title(), [EnrolledPhoto("p.jpg", "0", list(rng.normal(size=128)))])
        for sid in ("always", "first_half", "never")
    ])
    save_class(roster)
    video = _lecture_video(tmp_path / "lecture.mp4", frames_total)
    options = JobOptions(sample_fps=1.0, workers=0, listen="tcp://127.0.0.1:0", discovery=False, checkpoint=False, persistent_key=False)
    job = AttendanceJob(video, roster, options)  # a real job (socket bound, video probed), not run
    assert job.requester.total == frames_total
    take.roster = roster
    take.refresh_classes(select="Lecture")
    runner = take.runner
    runner.created.emit(job)

    peers = [{"id": f"{n:02x}", "name": f"laptop-{n}", "address": f"10.0.0.{n}", "cores": 4, "state": "working",
              "frames": 0, "frames_per_s": 1.0, "last_heard_s": 0.1, "bad_messages": 0} for n in range(12)]

    def lecture():  # as the requester's loop calls on_event, from the job thread: per batch of 8
        for batch in range(frames_total // 8):
            peer = peers[batch % len(peers)]
            for i in range(batch * 8, batch * 8 + 8):
                faces = [Face((10, 10, 40, 40), "always", 0.3, 1.0)]
                if i < frames_total // 2:
                    faces.append(Face((50, 10, 80, 40), "first_half", 0.3, 1.0))
                faces.append(Face((90, 10, 120, 40), None, 0.0, 1.0))
                encodings = (None,) * (len(faces) - 1) + (np.zeros(128, np.float32),)
                runner._on_event("frame", FrameResult(i, float(i), tuple(faces), encodings))
            peer["frames"] += 8
            runner._on_event("peer", dict(peer))
            runner._on_event("progress", {"done": batch * 8 + 8, "total": frames_total, "fps": 300.0, "eta_s": 1.0})
            if batch % 40 == 39:  # the requester's heartbeat round: every peer's snapshot
                runner._on_event("peers", [dict(p) for p in peers])
            time.sleep(0.025)  # a very fast swarm: ~300 frames/s, the lecture in ~20 s

    probe = EventLoopProbe()
    probe.start()
    sender = threading.Thread(target=lecture)
    started = time.monotonic()
    try:
        sender.start()
        qtbot.waitUntil(lambda: len(take.frames) == frames_total and take.view.progress.value() == frames_total, timeout=240_000)
        take.refresh_live()  # the once-a-second tally, once more after the last frame
        QApplication.processEvents()
    finally:
        sender.join(60)
        probe.stop()
        job.requester.socket.close(linger=0)
    elapsed = time.monotonic() - started
    typical, latency = probe.latency_ms()
    print(f"{frames_total} frames in {elapsed:.1f} s; {len(probe.gaps)} heartbeats, "
          f"event-loop latency: 95th percentile {typical} ms, worst {latency} ms")

    rows = {row.id: row for row in take.attendance_model.objects()}
    assert rows["always"].frames_seen == frames_total and rows["always"].status == "present"
    assert rows["first_half"].frames_seen == frames_total // 2
    assert rows["never"].frames_seen == 0 and rows["never"].status == "absent"
    assert abs(rows["first_half"].last_seen_s - (frames_total // 2 - 1)) <= 1
    done = {p["name"]: p["frames"] for p in take.peer_model.objects()}
    assert sum(done.values()) == frames_total and len(done) == 12
    assert take.view.progress.maximum() == frames_total
    assert typical < 50 and latency < 500, f"the GUI thread was blocked for {latency} ms (95th percentile {typical} ms)"
