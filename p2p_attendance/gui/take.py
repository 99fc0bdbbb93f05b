"""Take attendance (the home screen): video + class in, live progress, helpers and attendance out."""
from __future__ import annotations

import datetime as dt
import html
import os
import time
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from p2p_attendance.attendance.clustering import groups_count_text
from p2p_attendance.attendance.model import looks_like_text
from p2p_attendance.checkpoint import saved_frames
from p2p_attendance.gui.common import Task, app_settings, ask, drop_zone, format_eta, icon_size, jpeg_pixmap, screen_title, setting, show_error
from p2p_attendance.gui.models import AttendanceRow, WarningsModel, attendance_model, peer_model, present_so_far_text, sorted_view
from p2p_attendance.report.writers import format_time, integrity_text
from p2p_attendance.swarm.peers import PeerState

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".wmv", ".mpg", ".mpeg", ".ts", ".flv", ".3gp"}


def is_video(path: str) -> bool:
    """Whether a path's extension is one of the video formats the app opens."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


class TakeView(QWidget):
    """Layout only; TakeController fills and drives it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setSpacing(max(2, self.fontMetrics().height() // 5))  # tight: the screen must fit 1366×768

        title = screen_title("Take attendance")
        outer.addWidget(title)

        # -- inputs ----------------------------------------------------------------------------
        self.drop_zone, self.video_label, self.browse_button = drop_zone("Drop a lecture video anywhere on this window, or", "&Browse for a video…")
        outer.addWidget(self.drop_zone)

        row = QHBoxLayout()
        class_label = QLabel("C&lass:")
        self.class_combo = QComboBox()
        self.class_combo.setMinimumContentsLength(20)
        self.class_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        class_label.setBuddy(self.class_combo)
        self.options_button = QToolButton()
        self.options_button.setText("&Options")
        self.options_button.setCheckable(True)
        self.options_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.options_button.setArrowType(Qt.ArrowType.RightArrow)
        self.start_button = QPushButton("&Start")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Sto&p")
        self.cancel_button.setEnabled(False)
        row.addWidget(class_label)
        row.addWidget(self.class_combo, 1)
        row.addWidget(self.options_button)
        row.addStretch(0)
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        outer.addLayout(row)

        self.options_box = QGroupBox("Options")
        form = QGridLayout(self.options_box)  # two fields a row: it fits a 768-pixel-high screen
        self.sample_fps = QDoubleSpinBox()
        self.sample_fps.setRange(0.1, 10.0)
        self.sample_fps.setSingleStep(0.5)
        self.sample_fps.setDecimals(1)
        self.sample_fps.setSuffix(" per second of video")
        self.tolerance = QDoubleSpinBox()
        self.tolerance.setRange(0.3, 0.8)
        self.tolerance.setSingleStep(0.05)
        self.tolerance.setDecimals(2)
        self.tolerance.setToolTip("Lower is stricter: fewer mix-ups between students, but more faces left unknown.")
        self.threshold = QSpinBox()
        self.threshold.setRange(1, 100)
        self.threshold.setSuffix(" % of the lecture")
        self.workers = QSpinBox()
        self.workers.setRange(0, max(1, os.cpu_count() or 1))
        self.workers.setToolTip("0: this computer only hands out work; helpers do all of it.")
        fields = (
            ("&Frames to look at:", self.sample_fps),
            ("Face &match tolerance:", self.tolerance),
            ("Present when seen in at &least:", self.threshold),
            ("Cores of this computer to &use:", self.workers),
        )
        for number, (text, field) in enumerate(fields):
            label = QLabel(text)
            label.setBuddy(field)
            form.addWidget(label, number // 2, 3 * (number % 2))
            form.addWidget(field, number // 2, 3 * (number % 2) + 1)
        form.setColumnStretch(1, 1)
        form.setColumnStretch(4, 1)
        form.setColumnMinimumWidth(2, self.fontMetrics().height())
        self.options_box.setVisible(False)
        outer.addWidget(self.options_box)

        # -- join code + progress ------------------------------------------------------------------
        self.join_box = QGroupBox("Helpers join with this code")
        join = QHBoxLayout(self.join_box)
        self.join_code = QLabel("––––––")
        code_font = QFont(self.font())
        code_font.setPointSizeF(max(8.0, self.font().pointSizeF()) * 2.2)
        code_font.setBold(True)
        code_font.setStyleHint(QFont.StyleHint.Monospace)
        code_font.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 115)
        self.join_code.setFont(code_font)
        self.join_code.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.join_hint = QLabel("Start a job to get a join code. Students open P2P Attendance → Share my CPU and type it in.")
        self.join_hint.setWordWrap(True)
        self.join_hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        join.addWidget(self.join_code)
        join.addWidget(self.join_hint, 1)
        outer.addWidget(self.join_box)
        self.join_box.setVisible(False)

        progress_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.clear_progress()
        self.progress_label = QLabel("Ready.")
        progress_row.addWidget(self.progress, 2)
        progress_row.addWidget(self.progress_label, 1)
        outer.addLayout(progress_row)

        # -- warnings from the job (a helper quarantined, frames skipped, ...) ---------------------
        self.warnings_box = QGroupBox("Warnings")
        warnings_layout = QVBoxLayout(self.warnings_box)
        self.warnings_list = QListView()  # a WarningsModel: one row per distinct warning, with a count
        self.warnings_list.setUniformItemSizes(True)  # no per-row measuring when thousands arrive
        self.warnings_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # the count stays visible
        self.warnings_list.setFixedHeight(int(self.fontMetrics().height() * 3.2))
        self.warnings_list.setToolTip("What went wrong during this job. Help → Show log has the details.")
        warnings_layout.addWidget(self.warnings_list)
        self.warnings_box.setVisible(False)
        outer.addWidget(self.warnings_box)

        # -- live tables: the attendance gets the height, helpers and unknown faces sit beside it --
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.side_splitter = QSplitter(Qt.Orientation.Vertical)
        self.peer_box = QGroupBox("Computers helping")
        peer_layout = QVBoxLayout(self.peer_box)
        self.peer_table = QTableView()
        peer_layout.addWidget(self.peer_table)
        self.attendance_box = QGroupBox("Attendance")
        attendance_layout = QVBoxLayout(self.attendance_box)
        self.needs_a_look_first = QCheckBox("Absent, not seen and least sure &first")
        self.needs_a_look_first.setToolTip("Sort the students who need a look to the top. A click on a column header sorts by that column.")
        attendance_layout.addWidget(self.needs_a_look_first)
        self.attendance_table = QTableView()
        attendance_layout.addWidget(self.attendance_table)
        self.unknown_box = QGroupBox("Faces not on the class list")
        unknown_layout = QVBoxLayout(self.unknown_box)
        self.unknown_strip = QListWidget()
        self.unknown_strip.setViewMode(QListView.ViewMode.IconMode)
        self.unknown_strip.setFlow(QListView.Flow.LeftToRight)
        self.unknown_strip.setWrapping(True)
        self.unknown_strip.setMovement(QListView.Movement.Static)
        self.unknown_strip.setResizeMode(QListView.ResizeMode.Adjust)
        unknown_layout.addWidget(self.unknown_strip)
        self.side_splitter.addWidget(self.peer_box)
        self.side_splitter.addWidget(self.unknown_box)
        self.splitter.addWidget(self.attendance_box)
        self.splitter.addWidget(self.side_splitter)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        outer.addWidget(self.splitter, 1)

        bottom = QHBoxLayout()
        self.done_label = QLabel("")
        self.done_label.setWordWrap(True)
        self.review_button = QPushButton("&Review and report…")
        self.export_xlsx_button = QPushButton("Export &Excel…")
        self.export_csv_button = QPushButton("Export CS&V…")
        for button in (self.review_button, self.export_xlsx_button, self.export_csv_button):
            button.setEnabled(False)
        bottom.addWidget(self.done_label, 1)
        bottom.addWidget(self.review_button)
        bottom.addWidget(self.export_xlsx_button)
        bottom.addWidget(self.export_csv_button)
        outer.addLayout(bottom)

    def clear_progress(self) -> None:
        self.show_progress(0, 0)

    def show_progress(self, done: int, total: int) -> None:
        """done of total frames; no text without a count ("0 of 1 frames" read as a one-frame video)."""
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.progress.setFormat("%v of %m frames" if total > 0 else "")


class TakeController(QObject):
    """Drives the Take attendance screen: picks the video and class, runs the job, shows it live."""

    job_finished = Signal(object, object)  # AttendanceReport, AttendanceJob
    runner_created = Signal(object)  # the AttendanceJob, once its socket is bound
    running_changed = Signal(bool)
    review_requested = Signal()
    export_requested = Signal(str)  # "xlsx" | "csv"
    warning_raised = Signal(str)  # a warning from the job, for the status bar
    job_failed = Signal(str)  # the job did not run: the teacher's message

    TALLY_INTERVAL_MS = 1000
    # Grouping a lecture's unknown faces takes seconds of CPU (6-7 s for 90 minutes of a hall) that
    # the job needs too: while it runs, the strip is a preview, regrouped at most this often, and
    # never more than a fifth of the time (UNKNOWN_REGROUP_SHARE).
    UNKNOWN_REGROUP_S = 10.0
    UNKNOWN_REGROUP_SHARE = 0.2

    def __init__(self, view: TakeView | None = None, parent=None):
        super().__init__(parent)
        from p2p_attendance.attendance.tally import DEFAULT_PRESENCE_THRESHOLD
        from p2p_attendance.compute.matching import DEFAULT_TOLERANCE
        from p2p_attendance.compute.video import DEFAULT_SAMPLE_FPS
        from p2p_attendance.job import default_workers

        self.view = view or TakeView()
        self.settings = app_settings()
        self.listen = os.environ.get("P2P_ATTENDANCE_LISTEN", "tcp://0.0.0.0:0")
        self.video: str | None = None
        self.runner = None
        self.job = None
        self.roster = None
        self.frames: dict[int, object] = {}
        self._tallied = -1
        self._unknown_seen = None  # (frames, evidence snapshot) last grouped
        self._cluster_task = None
        self._grouped_at = -float("inf")  # when the live strip was last regrouped (monotonic)
        self._regroup_wait_s = self.UNKNOWN_REGROUP_S  # grows with how long the last grouping took
        self._unknown_key = None
        self.unknown_groups = []
        self.report = None
        self.connect_line = ""
        self.last_error = ""
        self.question: QMessageBox | None = None  # the open question (resume / start over), if any
        self.frames_from_checkpoint = 0
        self.peer_model = peer_model(self)
        self.attendance_model = attendance_model(self, lambda: icon_size(self.view, 1.8))
        self.warnings_model = WarningsModel(self)

        v = self.view
        v.sample_fps.setValue(setting(self.settings, "job/sample_fps", DEFAULT_SAMPLE_FPS, float))
        v.tolerance.setValue(setting(self.settings, "job/tolerance", DEFAULT_TOLERANCE, float))
        v.threshold.setValue(round(100 * setting(self.settings, "job/presence_threshold", DEFAULT_PRESENCE_THRESHOLD, float)))
        v.workers.setValue(setting(self.settings, "job/workers", default_workers(), int))
        self.peer_view = sorted_view(v.peer_table, self.peer_model)
        self.attendance_view = sorted_view(v.attendance_table, self.attendance_model)
        v.needs_a_look_first.toggled.connect(self.attendance_view.set_needs_a_look_first)
        v.attendance_table.horizontalHeader().sectionClicked.connect(lambda _: v.needs_a_look_first.setChecked(False))
        v.warnings_list.setModel(self.warnings_model)
        for table, stretch in ((v.peer_table, 0), (v.attendance_table, 1)):
            _style_table(table, stretch)
        thumb = icon_size(v, 1.8)  # small photos: more students fit on a laptop screen
        v.attendance_table.setIconSize(QSize(thumb, thumb))
        v.attendance_table.verticalHeader().setDefaultSectionSize(thumb + 6)
        unknown = icon_size(v, 3.5)
        v.unknown_strip.setIconSize(QSize(unknown, unknown))
        v.unknown_strip.setMinimumHeight(unknown + v.fontMetrics().height())
        v.peer_table.setMinimumHeight(3 * v.fontMetrics().height())
        # wide and tall enough for an unsure group's 'looks like Ann, Ben or Cy', wrapped: elided, it showed only '60× seen...'
        v.unknown_strip.setWordWrap(True)
        v.unknown_strip.setGridSize(QSize(int(unknown * 2.6), unknown + 6 * v.fontMetrics().height()))

        v.browse_button.clicked.connect(self.browse)
        v.options_button.toggled.connect(self._toggle_options)
        v.start_button.clicked.connect(self.start)
        v.cancel_button.clicked.connect(self.stop)
        v.review_button.clicked.connect(self.review_requested)
        v.export_xlsx_button.clicked.connect(lambda: self.export_requested.emit("xlsx"))
        v.export_csv_button.clicked.connect(lambda: self.export_requested.emit("csv"))
        v.class_combo.currentIndexChanged.connect(self._class_changed)
        v.sample_fps.valueChanged.connect(lambda value: self.settings.setValue("job/sample_fps", value))
        v.tolerance.valueChanged.connect(lambda value: self.settings.setValue("job/tolerance", value))
        v.threshold.valueChanged.connect(lambda value: self.settings.setValue("job/presence_threshold", value / 100.0))
        v.workers.valueChanged.connect(lambda value: self.settings.setValue("job/workers", value))

        self.timer = QTimer(self)
        self.timer.setInterval(self.TALLY_INTERVAL_MS)
        self.timer.timeout.connect(self.refresh_live)
        self.refresh_classes()

    # -- inputs --------------------------------------------------------------------------------
    def _toggle_options(self, shown: bool) -> None:
        self.view.options_box.setVisible(shown)
        self.view.options_button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def browse(self) -> None:
        start = setting(self.settings, "paths/video_dir", str(Path.home()))
        patterns = " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(self.view, "Choose the lecture video", start, f"Videos ({patterns});;All files (*)")
        if path:
            self.set_video(path)

    def set_video(self, path: str) -> None:
        self.video = str(path)
        self.settings.setValue("paths/video_dir", str(Path(path).parent))
        self.view.video_label.setText(f"Video: <b>{Path(path).name}</b><br><small>{Path(path).parent}</small>")
        self.view.video_label.setToolTip(str(path))

    def refresh_classes(self, select: str | None = None) -> None:
        from p2p_attendance.roster.store import list_classes

        combo = self.view.class_combo
        current = select or combo.currentData() or setting(self.settings, "job/class", "")
        combo.blockSignals(True)
        combo.clear()
        for roster in list_classes():
            combo.addItem(f"{roster.name}  ({len(roster.students)} students)", roster.name)
        if combo.count() == 0:
            combo.addItem("No classes yet: add one under Classes", None)
        index = combo.findData(current)
        combo.setCurrentIndex(max(0, index))
        combo.blockSignals(False)
        self._class_changed()

    def _class_changed(self, *_):
        if self.is_running():
            return
        name = self.view.class_combo.currentData()
        if name:
            self.settings.setValue("job/class", name)
        self._prefill_roster(name)

    def _prefill_roster(self, name: str | None) -> None:
        from p2p_attendance.roster.store import RosterError, load_class

        self.attendance_model.clear()
        self.view.attendance_box.setTitle("Attendance")
        if not name:
            return
        try:
            roster = load_class(name)
        except RosterError:
            return
        self._show_students(roster, [_blank(s) for s in roster.as_students()], live=True)

    # -- job -----------------------------------------------------------------------------------
    def options(self):
        from p2p_attendance.job import JobOptions

        v = self.view
        return JobOptions(
            sample_fps=v.sample_fps.value(),
            tolerance=v.tolerance.value(),
            presence_threshold=v.threshold.value() / 100.0,
            workers=v.workers.value(),
            listen=self.listen,
            discovery=False,  # the window's own advert carries the job (one advert per copy)
        )

    def is_running(self) -> bool:
        return self.runner is not None and self.runner.is_alive()

    def start(self, resume: bool | None = None) -> bool:
        """Start a job for the chosen video and class; True when it started.

        resume=None: when an interrupted run of this video and class left saved progress, ask
        Continue / Start over first (and return False: the answer starts it). resume=True
        continues from the saved progress, resume=False discards it."""
        from p2p_attendance.gui.runner import JobRunner
        from p2p_attendance.roster.store import RosterError, load_class

        if self.is_running():
            return False
        if not self.video:
            show_error(self.view, "Choose the lecture video first: drop it on the window or click Browse.")
            return False
        name = self.view.class_combo.currentData()
        if not name:
            show_error(self.view, "Choose a class first. Add one under Classes: drop a folder of student photos there.")
            return False
        try:
            roster = load_class(name)
        except RosterError as exc:
            show_error(self.view, str(exc))
            return False
        if not roster.students:
            show_error(self.view, f"The class '{name}' has no students yet. Add their photos under Classes.")
            return False
        options = self.options()
        if resume is None:
            saved = saved_frames(self.video, name)
            if saved:
                self._ask_resume(name, saved)
                return False
        options.resume = bool(resume)
        remembered = (("sample_fps", options.sample_fps), ("tolerance", options.tolerance),
                      ("presence_threshold", options.presence_threshold), ("workers", options.workers))
        for key, value in remembered:
            self.settings.setValue(f"job/{key}", value)
        self.roster = roster
        self.view.options_button.setChecked(False)  # the live tables get its room while the job runs
        self.frames.clear()
        self._tallied = -1
        self._unknown_seen, self._grouped_at = None, -float("inf")
        self._regroup_wait_s = self.UNKNOWN_REGROUP_S
        self._cluster_task = None  # a live grouping of an earlier job that failed: its answer is stale
        self._unknown_key = None
        self.report = None
        self.job = None
        self.frames_from_checkpoint = 0
        self.peer_model.clear()
        self.view.unknown_strip.clear()
        self.warnings_model.clear()
        self.view.warnings_box.setVisible(False)
        self.view.done_label.setText("")
        self.view.clear_progress()  # nothing of the last job's count stays on screen
        self._prefill_roster(name)
        self.attach_runner(JobRunner(self.video, roster, options, self))
        self._set_running(True)
        self.view.progress_label.setText("Opening the video and the saved progress…" if options.resume else "Opening the video…")
        self.view.join_code.setText("––––––")
        self.runner.start()
        self.timer.start()
        return True

    def attach_runner(self, runner) -> None:
        """Show this JobRunner's job: every event it emits lands on this screen."""
        self.runner = runner
        runner.created.connect(self._created)
        runner.progress.connect(self._progress)
        runner.frame.connect(self._frame)
        runner.peer.connect(self._peer)
        runner.peers.connect(self._peers)
        runner.warning.connect(self._warning)
        runner.finished.connect(self._finished)
        runner.failed.connect(self._failed)
        runner.mismatch.connect(self._mismatch)

    def _ask_resume(self, class_name: str, saved: int) -> None:
        def answer(key):
            self.question = None
            if key == "continue":
                self.start(resume=True)
            elif key == "start_over":
                self.start(resume=False)

        self.question = ask(
            self.view,
            "Continue the interrupted run?",
            f"An attendance run of <b>{Path(self.video).name}</b> for <b>{class_name}</b> was interrupted after "
            f"{saved} frame{'s' if saved != 1 else ''}. Continue it?",
            [
                ("continue", "&Continue", QMessageBox.ButtonRole.AcceptRole),
                ("start_over", "Start &over", QMessageBox.ButtonRole.DestructiveRole),
                ("cancel", "Cancel", QMessageBox.ButtonRole.RejectRole),
            ],
            answer,
            informative="Continue looks only at the frames still missing. Start over discards the saved progress.",
        )

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            self.view.cancel_button.setEnabled(False)
            self.view.progress_label.setText("Stopping: saying goodbye to the helpers…")

    def _set_running(self, running: bool) -> None:
        v = self.view
        for widget in (v.start_button, v.browse_button, v.class_combo, v.options_box):
            widget.setEnabled(not running)
        v.cancel_button.setEnabled(running)
        v.join_box.setVisible(running)  # the code matters only while a job runs; its room goes to the tables
        for button in (v.review_button, v.export_xlsx_button, v.export_csv_button):
            button.setEnabled(not running and self.report is not None)
        self.running_changed.emit(running)

    def _created(self, job) -> None:
        from p2p_attendance.discovery import choose_lan_address

        self.job = job
        self.runner_created.emit(job)
        host = "127.0.0.1" if self.listen.startswith("tcp://127.") else choose_lan_address()
        self.connect_line = job.connect_line(host)
        self.view.join_code.setText(job.join_code)
        self.view.join_hint.setText(
            f"Students: open P2P Attendance → <b>Share my CPU</b>, type <b>{job.join_code}</b>.<br>"
            f"<small>Or connect directly: <code>{self.connect_line}</code><br>"
            f"This computer's key: {job.key_fingerprint()} (compare it on the helpers' screens)</small>"
        )
        total = job.total_frames
        self.frames_from_checkpoint = job.frames_from_checkpoint
        if self.runner is not None and self.runner.prior_frames:
            self.frames.update(self.runner.prior_frames)  # the live tables start from the saved progress
        self.view.show_progress(min(total, self.frames_from_checkpoint), total)
        self.view.progress_label.setText(
            f"{job.info.duration_s / 60:.0f} min of video, {total} frames to look at"
            + (f"; {self._from_checkpoint_text()}" if self.frames_from_checkpoint else "")
            + ". Waiting for helpers…"
        )

    def _from_checkpoint_text(self) -> str:
        n = self.frames_from_checkpoint
        return f"{n} frame{'s' if n != 1 else ''} from the saved progress"

    def _progress(self, p: dict) -> None:
        self.view.show_progress(p["done"], p["total"])
        if p["done"] > self.frames_from_checkpoint:
            text = f"{p['fps']:.1f} frames/s · {format_eta(p['eta_s'])}"
            if self.frames_from_checkpoint:
                text += f" · {self._from_checkpoint_text()}"
            self.view.progress_label.setText(text)

    def _frame(self, frame) -> None:
        self.frames[frame.index] = frame

    def _peer(self, snapshot: dict) -> None:
        self.peer_model.upsert(snapshot["id"], snapshot)

    def _peers(self, snapshots: list) -> None:
        for snapshot in snapshots:
            self.peer_model.upsert(snapshot["id"], snapshot)

    def _warning(self, text: str) -> None:
        """Warnings from the job: listed under the progress bar, a repeat counted on its row (O(1),
        however many came before); a new one also goes to the status bar."""
        if not self.warnings_model.add(text, f"{dt.datetime.now():%H:%M:%S}"):
            self._show_warning_total()
            return
        self.view.warnings_list.scrollToBottom()
        self._show_warning_total()
        self.view.warnings_box.setVisible(True)
        self.warning_raised.emit(text)

    def _show_warning_total(self) -> None:
        self.view.warnings_box.setTitle(f"Warnings ({self.warnings_model.total()})")

    def warnings(self) -> list[str]:
        return self.warnings_model.texts()

    def refresh_live(self) -> None:
        """Once a second: re-tally what has arrived (cheap: no clustering) and update rows."""
        from p2p_attendance.attendance.tally import tally

        if self.roster is None or self.job is None:
            return
        if len(self.frames) != self._tallied:
            self._tallied = len(self.frames)
            students, _, _, _ = tally(
                list(self.frames.values()), self.roster.as_students(), self.job.info.duration_s,
                threshold=self.job.options.presence_threshold, cluster_unknowns=False,
            )
            self._show_students(self.roster, students, live=self.is_running())
        self._refresh_unknowns()

    def _show_students(self, roster, students, live: bool) -> None:
        from p2p_attendance.roster.store import thumbnail_path

        for student in students:
            self.attendance_model.upsert(student.id, AttendanceRow.of(student, str(thumbnail_path(roster.name, student.id)), live))
        self.view.attendance_box.setTitle(f"Attendance: {present_so_far_text(students, live)}")

    def _refresh_unknowns(self, final: bool = False) -> None:
        """Faces nobody matched, one thumbnail per unknown person: while the job runs grouped off
        the GUI thread by the report's own rule; at the end, the report's groups themselves."""
        from p2p_attendance.attendance.evidence import unknown_people, with_crops

        if self.job is None:
            return
        snapshot = self.job.evidence_snapshot()
        if final:
            self._cluster_task = None  # a live grouping still under way is out of date
            self._show_unknowns(with_crops(self.job.unknown_groups(), snapshot))
            return
        seen = (len(self.frames), snapshot)
        if seen == self._unknown_seen or self._cluster_task is not None or not snapshot.unknown:
            return
        if time.monotonic() - self._grouped_at < self._regroup_wait_s:
            return
        started = time.monotonic()
        self._unknown_seen, self._grouped_at = seen, started
        task = self._cluster_task = Task(unknown_people, list(self.frames.values()), snapshot, self.job.enrolled_faces(),
                                         message="Grouping unknown faces failed.")
        task.done.connect(lambda _: self._grouping_took(time.monotonic() - started))
        task.done.connect(lambda people: self._show_unknowns(people) if self._cluster_task is task else None)
        task.failed.connect(lambda *_: setattr(self, "_cluster_task", None) if self._cluster_task is task else None)
        task.start()

    def _grouping_took(self, seconds: float) -> None:
        """The next live regrouping waits so grouping takes at most UNKNOWN_REGROUP_SHARE of the time."""
        self._grouped_at = time.monotonic()
        self._regroup_wait_s = max(self.UNKNOWN_REGROUP_S, seconds / self.UNKNOWN_REGROUP_SHARE)

    def _show_unknowns(self, people) -> None:
        """people: UnknownPersonEvidence (attendance/evidence.py), as numbered in the report."""
        self._cluster_task = None
        self.unknown_groups = people
        key = [(p.label, p.group.faces, p.group.looks_like, len(p.crops)) for p in people]
        if key == self._unknown_key:
            return
        self._unknown_key = key
        strip = self.view.unknown_strip
        strip.clear()
        size = strip.iconSize().width()
        names = {s.id: s.name for s in self.roster.students} if self.roster is not None else {}
        for person in people:
            times = person.group.times
            icon = QIcon(jpeg_pixmap(person.crops[0].jpeg, size)) if person.crops else QIcon()
            looks = looks_like_text(person.group.looks_like_names(names))  # '' for a stranger
            item = QListWidgetItem(icon, f"{person.label}\n{len(times)}× seen" + (f"\n{looks}" if looks else ""))
            item.setToolTip(f"Seen {len(times)} times, first at {format_time(times[0])}" + (f"; {looks}" if looks else ""))
            strip.addItem(item)
        self.view.unknown_box.setTitle(f"Faces not on the class list ({groups_count_text(p.group for p in people)})")

    def _finished(self, report) -> None:
        self.timer.stop()
        if self.runner is not None and self.runner.thread is not None:
            self.runner.thread.join(timeout=5)  # it emitted this as its last act: ends at once
        self.report = report
        job = self.runner.job if self.runner else self.job
        self.job = job
        self._set_running(False)
        if job is not None and self.roster is not None:
            self._show_students(self.roster, report.students, live=False)
            self._refresh_unknowns(final=True)
        info = report.job
        present = sum(1 for s in report.students if s.status == "present")
        if job is not None and job.finished:
            self.view.show_progress(info.frames_total, info.frames_total)
            self.view.progress_label.setText(
                f"Done in {info.elapsed_s:.0f} s" + (f"; {self._from_checkpoint_text()}." if info.frames_from_checkpoint else ".")
            )
            text = f"<b>{present} of {len(report.students)} present.</b> Review the verdicts, then export."
        else:
            self.view.progress_label.setText("Stopped.")
            text = f"Stopped early: {info.frames_processed} of {info.frames_total} frames were looked at; the report covers only those."
            if self.video and self.roster is not None and saved_frames(self.video, self.roster.name):
                text += " The progress is saved: Start continues it later."
        for warning in info.warnings:
            if not self.warnings_model.has(warning):  # already counted as it happened
                self._warning(warning)
        text += f"<br>Checks: {html.escape(integrity_text(info.integrity))}"
        if self.warnings_model.total():
            count = self.warnings_model.total()
            text += f"<br>⚠ {count} warning{'s' if count != 1 else ''}: see the list above."
        self.view.done_label.setText(text)
        self.view.join_code.setText("––––––")
        self.view.join_hint.setText("The job is over; the helpers have been told and can stop sharing. The next job of this class uses the same code.")
        for snapshot in self.peer_model.objects():
            if PeerState(snapshot["state"]).active:
                self.peer_model.upsert(snapshot["id"], dict(snapshot, state=PeerState.DONE.value))
        self.job_finished.emit(report, job)

    def _ended_without_report(self, message: str, label: str) -> None:
        self.timer.stop()
        if self.runner is not None and self.runner.thread is not None:
            self.runner.thread.join(timeout=5)
        self._set_running(False)
        self.last_error = message
        self.view.progress_label.setText(label)

    def _failed(self, message: str, details: str) -> None:
        self._ended_without_report(message, "The job did not run.")
        self.job_failed.emit(message)
        show_error(self.view, message, details)

    def _mismatch(self, mismatch, details: str) -> None:
        """Resuming was refused: the saved progress belongs to another video, class list or settings."""
        self._ended_without_report(str(mismatch), "The saved progress cannot be continued.")

        def answer(key):
            self.question = None
            if key == "start_over":
                self.start(resume=False)

        self.question = ask(
            self.view,
            "The saved progress cannot be continued",
            f"The saved progress of this run cannot be continued: {mismatch_text(mismatch)}.",
            [
                ("start_over", "Start &over", QMessageBox.ButtonRole.AcceptRole),
                ("cancel", "Cancel", QMessageBox.ButtonRole.RejectRole),
            ],
            answer,
            informative="Start over looks at the whole video again with the current class list and settings; the saved progress is discarded.",
            details=details,
            icon=QMessageBox.Icon.Warning,
        )


# A checkpoint's parts and settings in the teacher's words (CheckpointMismatch.changed / .settings).
_MISMATCH_PARTS = {
    "video_fingerprint": "a different video (the file has changed since)",
    "roster_hash": "a different class list (students or photos have changed since)",
}
_SETTING_NAMES = {"sample_fps": "frames per second", "tolerance": "match tolerance"}


def mismatch_text(mismatch) -> str:
    """Why saved progress cannot be continued, from a CheckpointMismatch's fields."""
    reasons = [_MISMATCH_PARTS[part] for part in mismatch.changed if part in _MISMATCH_PARTS]
    if "params" in mismatch.changed:
        named = [f"{_SETTING_NAMES[key]} {saved:g} then, {now:g} now" for key, (saved, now) in mismatch.settings.items()
                 if key in _SETTING_NAMES and isinstance(saved, (int, float)) and isinstance(now, (int, float))]
        reasons.append(f"other settings ({'; '.join(named)})" if named else "other settings (frames per second or match tolerance)")
    return "it was made with " + " and ".join(reasons)


def _blank(student):
    from p2p_attendance.attendance.model import ABSENT, StudentAttendance

    return StudentAttendance(student.id, student.name, ABSENT, 0.0, None, None, 0)


def _style_table(table: QTableView, stretch: int) -> None:
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setAlternatingRowColors(True)
    table.verticalHeader().hide()
    table.setTabKeyNavigation(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
