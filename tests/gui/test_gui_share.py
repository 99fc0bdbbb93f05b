"""The Share screen when a job refuses the student (issue 16, item 2): the reason in plain words,
and the code editable again without switching sharing off; offscreen, against real jobs on
127.0.0.1."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import zmq  # noqa: E402
from conftest import Lecture, tiny_video, wrong_code  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from p2p_attendance.swarm.security import split_connect  # noqa: E402
from p2p_attendance.swarm.volunteer import AdmissionRefused, JobTarget, admit  # noqa: E402


@pytest.fixture
def share(qtbot, tmp_path, monkeypatch):
    from p2p_attendance.gui.share import ShareController

    monkeypatch.setenv("P2P_ATTENDANCE_SETTINGS", str(tmp_path / "settings.ini"))
    controller = ShareController(use_discovery=False)
    qtbot.addWidget(controller.view)
    controller.view.show()
    controller.view.cores.setValue(1)
    controller.view.plugged_only.setChecked(False)
    yield controller
    controller.shutdown()


def _start(share, lecture, code):
    share.view.join_code.setText(code)
    share.view.connect_line.setText(lecture.job.requester.connect_line("127.0.0.1"))
    share.view.toggle.setChecked(True)


def test_a_wrong_code_is_explained_and_the_corrected_code_gets_in_without_switching_off(qtbot, share, tmp_path):
    with Lecture(tiny_video(tmp_path / "lecture.mp4")) as lecture:
        code = lecture.job.join_code
        _start(share, lecture, wrong_code(code))
        qtbot.waitUntil(lambda: "did not accept this join code" in share.view.detail.text(), timeout=30_000)
        print(f"shown: {share.view.state.text()!r} / {share.view.detail.text()!r}")
        assert share.is_sharing() and share.is_running()  # still on
        assert share.view.join_code.isEnabled()  # and the code can be corrected
        share.view.join_code.clear()
        qtbot.keyClicks(share.view.join_code, code)
        qtbot.keyClick(share.view.join_code, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: len(lecture.job.requester.peers) > 0, timeout=60_000)
        assert lecture.job.requester.admission.failed_attempts == 1  # the corrected code was the next try, and it got in
        qtbot.waitUntil(lambda: not share.view.join_code.isEnabled() or not lecture.thread.is_alive(), timeout=10_000)


def test_a_spent_guess_budget_is_explained_with_the_time_to_wait(qtbot, share, tmp_path):
    with Lecture(tiny_video(tmp_path / "lecture.mp4")) as lecture:
        code = lecture.job.join_code
        endpoint, key = split_connect(lecture.job.requester.connect_line("127.0.0.1"))
        for _ in range(20):  # someone guessing: the class's budget is spent
            with pytest.raises(AdmissionRefused):
                admit(JobTarget(endpoint, key, wrong_code(code)), zmq.curve_keypair())
        _start(share, lecture, code)
        qtbot.waitUntil(lambda: "too many wrong codes" in share.view.detail.text(), timeout=30_000)
        print(f"shown: {share.view.detail.text()!r}")
        assert "about" in share.view.detail.text() and "seconds" in share.view.detail.text()
        assert share.is_sharing() and share.view.join_code.isEnabled()
