"""The teacher's day on a laptop: 1366×768, a 40-student class, reports never lost, one copy of
the app. pytest-qt, offscreen, against real jobs on 127.0.0.1.

The class: the demo's three real students enrolled from their photos, plus 37 roster entries
made directly through roster/store.py with random encodings (no face in the video matches them,
so they are absent): enrolling 40 photos would take minutes on the shared CPUs."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import stat  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402

CLASS = "Physics 1"
LAPTOP = (1366, 768)
# What the window may use of a 1366×768 screen: a panel (~28 px) and the title bar (~30 px) take the rest.
USABLE_HEIGHT = 700


def add_synthetic_students(class_name: str, count: int) -> None:
    from p2p_attendance.roster.store import EnrolledPhoto, EnrolledStudent, load_class, save_class

    roster = load_class(class_name)
    rng = np.random.default_rng(16)
    for number in range(count):
        encoding = rng.normal(size=128)
        encoding /= np.linalg.norm(encoding)
        photo = EnrolledPhoto(f"synthetic_{number:02d}.jpg", f"{number:064x}", [float(x) for x in encoding])
        roster.students.append(EnrolledStudent(f"synthetic_{number:02d}", f"Synthetic Student {number:02d}", [photo]))
    save_class(roster)


@pytest.fixture
def class40(demo_material, engine, tmp_path, monkeypatch):
    from p2p_attendance.roster.enroll import enroll_folder
    from p2p_attendance.roster.store import load_class

    monkeypatch.setenv("P2P_ATTENDANCE_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("P2P_ATTENDANCE_LISTEN", "tcp://127.0.0.1:0")
    result = enroll_folder(demo_material.photos_dir, CLASS, lambda: engine)
    assert not result.problems
    add_synthetic_students(CLASS, 37)
    assert len(load_class(CLASS).students) == 40
    return demo_material


@pytest.fixture
def window(qtbot, class40):
    from p2p_attendance.gui.window import MainWindow

    win = MainWindow(discovery=False, tray=False, offer_resume=False)
    win.confirm = lambda *_: True
    win.unsaved_answered = True  # pytest-qt closes the window without a Save question; the test below asks
    qtbot.addWidget(win)
    win.resize(*LAPTOP)
    win.show()
    yield win
    take = win.take
    take.stop()
    if take.runner is not None and take.runner.thread is not None:
        take.runner.thread.join(30)
    win.share.shutdown()


def run_job(qtbot, win, video, workers=1):
    take = win.take
    take.set_video(str(video))
    take.refresh_classes(select=CLASS)
    assert take.view.class_combo.currentData() == CLASS
    take.view.workers.setValue(workers)
    assert take.start(resume=False)
    qtbot.waitUntil(lambda: take.report is not None, timeout=120_000)
    return take.report


def shown_rows(table) -> list:
    """The attendance rows in the order the table shows them."""
    proxy = table.model()
    source = proxy.sourceModel()
    return [source.object_at(proxy.mapToSource(proxy.index(row, 0)).row()) for row in range(proxy.rowCount())]


# -- fits a laptop --------------------------------------------------------------------------------
def test_take_screen_fits_1366x768_with_options_open_and_a_warning(qtbot, window):
    take = window.take
    take.refresh_classes(select=CLASS)
    take.view.options_button.setChecked(True)
    take._warning("A helper's results disagreed with two others and were thrown away")
    qtbot.wait(50)
    assert take.view.options_box.isVisible() and take.view.warnings_box.isVisible()
    hint = window.minimumSizeHint()
    print(f"minimum window size with Options open and a warning: {hint.width()}×{hint.height()}")
    assert hint.width() <= LAPTOP[0] and hint.height() <= USABLE_HEIGHT
    window.resize(LAPTOP[0], USABLE_HEIGHT)
    qtbot.waitUntil(lambda: window.height() <= USABLE_HEIGHT)
    table = take.view.attendance_table
    rows = table.viewport().height() // table.verticalHeader().defaultSectionSize()
    print(f"attendance rows visible at 1366×{USABLE_HEIGHT}, Options open: {rows}; closed: ", end="")
    assert rows >= 5
    take.view.options_button.setChecked(False)
    qtbot.wait(50)
    rows_closed = table.viewport().height() // table.verticalHeader().defaultSectionSize()
    print(rows_closed)
    assert rows_closed >= 7
    # the attendance table is the biggest thing on the screen
    assert table.height() > take.view.peer_table.height() and table.height() > take.view.unknown_strip.height()


def test_the_window_opens_within_the_screen(qtbot, class40):
    from p2p_attendance.gui.window import MainWindow

    win = MainWindow(discovery=False, tray=False, offer_resume=False)
    qtbot.addWidget(win)
    screen = win.screen().availableGeometry()
    assert win.width() <= screen.width() and win.height() <= screen.height()


# -- a real job with 40 students ------------------------------------------------------------------
def test_a_job_for_40_students_counts_sorts_and_keeps_the_report(qtbot, window, class40, tmp_path):
    from p2p_attendance import paths
    from p2p_attendance.report.history import list_reports

    notified = []
    window.notify = lambda title, text: notified.append((title, text))
    take = window.take
    # the count before the job: 0 of 40
    take.refresh_classes(select=CLASS)
    assert take.view.attendance_box.title() == "Attendance: 0 of 40 present so far"
    report = run_job(qtbot, window, class40.video)
    assert take.view.attendance_box.title() == "Attendance: 2 of 40 present"
    assert notified and "ready" in notified[-1][0] and "2 of 40 present" in notified[-1][1]

    # every table sorts; the attendance table's sort key is the number, not the text ("9 %" < "10 %")
    for table in (take.view.attendance_table, take.view.peer_table, window.review.view.table, window.classes.view.students):
        assert table.isSortingEnabled()
    table = take.view.attendance_table
    table.sortByColumn(3, Qt.SortOrder.DescendingOrder)  # Presence
    presence = [row.presence for row in shown_rows(table)]
    assert presence == sorted(presence, reverse=True) and presence[0] > 0
    table.sortByColumn(1, Qt.SortOrder.AscendingOrder)  # Student
    names = [row.name for row in shown_rows(table)]
    assert names == sorted(names, key=str.casefold)

    # absent, not seen and least sure first
    take.view.needs_a_look_first.setChecked(True)
    statuses = [row.status for row in shown_rows(table)]
    assert statuses == ["absent"] * 38 + ["present"] * 2
    present = [row.presence for row in shown_rows(table)][-2:]
    assert present == sorted(present)  # the less sure of the two present first

    # Review: the report opened and is kept in the class's history, private to the user
    review = window.review
    assert window.stack.currentWidget() is review.view
    review.flush_history()  # written on the history thread
    kept = list_reports(CLASS)
    assert len(kept) == 1 and not kept[0].exported
    assert {s.id: s.status for s in kept[0].report.students} == {s.id: s.status for s in report.students}
    assert stat.S_IMODE(kept[0].path.stat().st_mode) == 0o600
    for folder in (kept[0].path.parent, paths.history_dir()):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert review.view.history.count() == 1 and "not exported" in review.view.history.itemText(0)

    # the review table selects through the sort: the evidence shown is the selected student's
    review.view.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
    review.view.table.selectRow(0)
    top = shown_rows(review.view.table)[0]
    assert review.selected_id() == top.id and top.name in review.view.evidence_box.title()

    # an override is kept in the history too
    review.set_override("ada_lovelace", "present")
    review.flush_history()
    assert list_reports(CLASS)[0].overrides == {"ada_lovelace": "present"}
    exported = review.export("xlsx", str(tmp_path / "first.xlsx"))
    assert exported is not None and review.view.saved_label.text().startswith("Saved first.xlsx")
    review.flush_history()
    assert list_reports(CLASS)[0].exported

    # a second job: the old "Saved" line and count are gone, the first report is still there
    take.set_video(str(class40.video))
    take.view.workers.setValue(1)
    assert take.start(resume=False)
    assert take.view.progress.value() == 0 and take.view.progress.text() == "" and take.view.done_label.text() == ""
    qtbot.waitUntil(lambda: take.report is not None, timeout=120_000)
    assert review.view.saved_label.text() == ""
    review.flush_history()
    assert len(list_reports(CLASS)) == 2 and review.view.history.count() == 2

    # reopen the first report from the history: its override is back, and it exports
    first = next(i for i in range(review.view.history.count()) if review.view.history.itemData(i) == str(kept[0].path))
    review.view.history.setCurrentIndex(first)
    review.view.history.activated.emit(first)
    assert review.saved_path == kept[0].path
    assert {s.id: s.status for s in review.report().students}["ada_lovelace"] == "present"
    assert review.export("csv", str(tmp_path / "first-again.csv")).read_text(encoding="utf-8").count("ada_lovelace") == 1


# -- quitting never loses a report ----------------------------------------------------------------
def test_quitting_with_an_unexported_or_edited_report_asks_save_discard_cancel(qtbot, window, class40, tmp_path):
    review = window.review
    window.unsaved_answered = False
    window.close()  # nothing to lose yet: closes
    assert not window.isVisible()
    window.show()
    run_job(qtbot, window, class40.video)

    window.close()
    question = window.unsaved_question
    assert question is not None and window.isVisible()
    assert set(question.answer_buttons) == {"save", "discard", "cancel"}
    question.answer_buttons["cancel"].click()
    qtbot.waitUntil(lambda: window.unsaved_question is None)
    assert window.isVisible()

    review.export("xlsx", str(tmp_path / "done.xlsx"))
    review.set_override("ada_lovelace", "present")  # edited after the export: asks again
    window.close()
    assert window.unsaved_question is not None and window.isVisible()
    window.unsaved_question.answer_buttons["discard"].click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)


def test_a_job_that_fails_sends_a_notification(qtbot, window, tmp_path):
    notified = []
    window.notify = lambda title, text: notified.append((title, text))
    fake = tmp_path / "lecture.mp4"
    fake.write_text("not a video")
    take = window.take
    take.set_video(str(fake))
    take.refresh_classes(select=CLASS)
    assert take.start(resume=False)
    qtbot.waitUntil(lambda: not take.is_running() and bool(take.last_error), timeout=60_000)
    assert notified and notified[-1][0] == "Attendance failed"


def test_the_window_and_tray_use_the_apps_own_icon(qtbot, class40):
    from PySide6.QtGui import QIcon

    from p2p_attendance.gui.window import MainWindow
    from p2p_attendance.paths import resources_dir

    win = MainWindow(discovery=False, tray=False, offer_resume=False)
    qtbot.addWidget(win)
    expected = QIcon(str(resources_dir() / "icon.png")).pixmap(64).toImage()
    assert win.windowIcon().pixmap(64).toImage() == expected


# -- enrolling shows a count and can be cancelled -------------------------------------------------
def test_enrolling_shows_a_count_and_cancel_leaves_the_class_unchanged(qtbot, window, class40, tmp_path):
    import shutil

    from p2p_attendance.roster.store import load_class

    folder = tmp_path / "photos"
    shutil.copytree(class40.photos_dir, folder)
    classes = window.classes
    window.show_screen("classes")
    classes.refresh(select=CLASS)
    before = [(s.id, len(s.photos)) for s in load_class(CLASS).students]
    seen = []

    def first_photo_done(done, total, photo):
        seen.append((done, total, classes.view.busy.text()))
        classes.cancel()

    classes.enroll_progress.connect(first_photo_done)
    assert classes.enroll(str(folder), "New class") is not None
    assert classes.view.cancel_button.isVisible()
    qtbot.waitUntil(lambda: classes.task is None, timeout=120_000)
    assert seen[0][:2] == (1, 3) and "1 of 3 photos" in seen[0][2]
    # the worker may be into the next photo when Cancel arrives; the count stops there
    assert all(text == "Cancelling…" for _, _, text in seen[1:])
    assert not classes.view.busy.isVisible()
    assert "cancelled" in window.statusBar().currentMessage()
    from p2p_attendance.roster.store import list_classes

    assert [c.name for c in list_classes()] == [CLASS]
    assert [(s.id, len(s.photos)) for s in load_class(CLASS).students] == before


# -- one copy per user ----------------------------------------------------------------------------
def test_a_second_launch_raises_the_first_window_and_exits(qapp, tmp_path):
    from p2p_attendance.gui.instance import ask_running_copy_to_show

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1",
               P2P_ATTENDANCE_SETTINGS=str(tmp_path / "settings.ini"))
    command = [sys.executable, "-m", "p2p_attendance", "gui"]
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ask_running_copy_to_show() and time.monotonic() < deadline:  # until the first copy listens
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
            time.sleep(0.5)
        started = time.monotonic()
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        print(f"the second launch exited in {time.monotonic() - started:.1f} s")
        assert second.returncode == 0 and "already open" in second.stderr, second.stderr[-2000:]
        assert first.poll() is None  # the first copy is still up
    finally:
        first.terminate()
        first.wait(20)
        log.close()


def test_single_instance_server_answers_and_a_stale_name_is_reused(qtbot):
    from p2p_attendance.gui.instance import SingleInstance, ask_running_copy_to_show

    name = f"p2p-attendance-test-{os.getpid()}"
    assert not ask_running_copy_to_show(name)
    guard = SingleInstance(name)
    try:
        with qtbot.waitSignal(guard.show_requested, timeout=5_000):
            assert ask_running_copy_to_show(name)
    finally:
        guard.close()
    again = SingleInstance(name)  # listening again after the first closed
    again.close()
