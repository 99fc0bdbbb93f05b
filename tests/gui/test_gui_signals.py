"""Qt signal delivery over a lecture's worth of events, in a process of its own so that a
binding that corrupts reference counts (PySide6 6.12.0 under Python 3.11 aborted with
"bool_dealloc" after ~570 emits) shows up as a crash, not as a poisoned test session."""
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("PySide6")

EMITTER = textwrap.dedent(
    """
    import sys, threading
    from PySide6.QtCore import QCoreApplication, QTimer
    from p2p_attendance.gui.runner import JobRunner

    app = QCoreApplication([])
    runner = JobRunner("lecture.mp4", None, None)  # the job's bridge, as the Take screen uses it
    got = {"progress": 0, "frame": 0, "peer": 0, "warning": 0}
    runner.progress.connect(lambda p: got.__setitem__("progress", got["progress"] + 1))
    runner.frame.connect(lambda f: got.__setitem__("frame", got["frame"] + 1))
    runner.peer.connect(lambda p: got.__setitem__("peer", got["peer"] + 1))
    runner.warning.connect(lambda w: got.__setitem__("warning", got["warning"] + 1))
    N = int(sys.argv[1])
    true_before = sys.getrefcount(True)

    def job_thread():  # as AttendanceJob's on_event: from another thread, queued to the GUI thread
        for i in range(N):
            runner._on_event("progress", {"done": i, "total": N, "fps": 1.0, "eta_s": None})
            runner._on_event("frame", i)
            runner._on_event("peer", {"id": "ab", "frames": i})
            runner._on_event("warning", f"laptop-{i % 7} tried a wrong join code")

    thread = threading.Thread(target=job_thread)
    thread.start()

    def check():
        if sum(got.values()) < 4 * N:
            QTimer.singleShot(20, check)
            return
        app.quit()

    QTimer.singleShot(20, check)
    QTimer.singleShot(120_000, app.quit)  # bounded, whatever happens
    app.exec()
    thread.join()
    print("delivered", sum(got.values()), "true_refcount_change", sys.getrefcount(True) - true_before)
    """
)


@pytest.mark.timeout(180)
def test_fifty_thousand_signals_keep_reference_counts_and_exit_cleanly(tmp_path):
    # 5,400 samples is a 90-minute lecture at 1 frame/s; four signals each, then more: 60,000.
    n = 15_000
    script = tmp_path / "emit.py"
    script.write_text(EMITTER)
    proc = subprocess.run(
        [sys.executable, str(script), str(n)],
        capture_output=True, text=True, timeout=170, env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]  # normal interpreter teardown, no abort
    words = proc.stdout.split()
    assert words[0] == "delivered" and int(words[1]) == 4 * n
    # Each emit used to drop one reference to True; a sound binding leaves it unchanged.
    assert abs(int(words[3])) < 50, proc.stdout
