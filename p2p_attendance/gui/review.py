"""Review before export: the report in the app, the evidence behind each verdict, the teacher's
overrides (marked manual in every export), unknown faces assigned to students, and the exports."""
from __future__ import annotations

import datetime as dt
import html
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from p2p_attendance.attendance.clustering import groups_count_text
from p2p_attendance.attendance.evidence import EvidenceSnapshot, with_crops
from p2p_attendance.attendance.model import ABSENT, PRESENT, looks_like_text
from p2p_attendance.attendance.tally import Margin
from p2p_attendance.gui.common import app_settings, icon_size, jpeg_pixmap, screen_title, setting, show_error
from p2p_attendance.gui.models import AttendanceRow, attendance_model, sorted_view
from p2p_attendance.gui.take import _style_table
from p2p_attendance.report.writers import format_time

# One thread writes every history entry, in the order the changes were made.
_history_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-history")


class ReviewView(QWidget):
    """The Review screen's layout: report history, summary, student table, evidence, unknown faces, exports."""

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        title = screen_title("Review and report")
        outer.addWidget(title)
        history = QHBoxLayout()
        class_label = QLabel("C&lass:")
        self.history_class = QComboBox()
        self.history_class.setMinimumContentsLength(16)
        class_label.setBuddy(self.history_class)
        report_label = QLabel("&Report:")
        self.history = QComboBox()
        self.history.setToolTip("Every finished report of the class is kept here: reopen any to check or export it.")
        report_label.setBuddy(self.history)
        history.addWidget(class_label)
        history.addWidget(self.history_class)
        history.addWidget(report_label)
        history.addWidget(self.history, 1)
        outer.addLayout(history)
        self.summary = QLabel("Take attendance first; the report opens here when the job is done.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.summary)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        self.needs_a_look_first = QCheckBox("Close calls, absent and least sure &first")
        self.needs_a_look_first.setToolTip(
            "Sort the students who need a look to the top: first those whose presence is close to the threshold "
            "(a window or two would change the verdict). A click on a column header sorts by that column."
        )
        left_layout.addWidget(self.needs_a_look_first)
        self.table = QTableView()
        left_layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.present_button = QPushButton("Mark &present")
        self.absent_button = QPushButton("Mark &absent")
        self.undo_button = QPushButton("&Use the app's verdict")
        for button in (self.present_button, self.absent_button, self.undo_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        left_layout.addLayout(buttons)
        self.evidence_box = QGroupBox("What the app saw")
        evidence_layout = QVBoxLayout(self.evidence_box)
        self.evidence_hint = QLabel("Select a student to see the faces the decision rests on.")
        self.evidence_hint.setWordWrap(True)
        self.evidence = QListWidget()
        self.evidence.setViewMode(QListView.ViewMode.IconMode)
        self.evidence.setMovement(QListView.Movement.Static)
        self.evidence.setResizeMode(QListView.ResizeMode.Adjust)
        self.evidence.setWordWrap(True)
        evidence_layout.addWidget(self.evidence_hint)
        evidence_layout.addWidget(self.evidence, 1)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.evidence_box)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        outer.addWidget(self.splitter, 1)

        self.unknown_box = QGroupBox("Faces not on the class list")
        unknown_layout = QVBoxLayout(self.unknown_box)
        self.unknowns = QListWidget()
        self.unknowns.setViewMode(QListView.ViewMode.IconMode)
        self.unknowns.setFlow(QListView.Flow.LeftToRight)
        self.unknowns.setWrapping(False)
        self.unknowns.setMovement(QListView.Movement.Static)
        unknown_layout.addWidget(self.unknowns)
        assign = QHBoxLayout()
        assign_label = QLabel("This face &is:")
        self.assign_combo = QComboBox()
        assign_label.setBuddy(self.assign_combo)
        self.add_to_class = QCheckBox("Also add this face to the student's &photos")
        self.add_to_class.setChecked(True)
        self.assign_button = QPushButton("Assi&gn")
        assign.addWidget(assign_label)
        assign.addWidget(self.assign_combo, 1)
        assign.addWidget(self.add_to_class)
        assign.addWidget(self.assign_button)
        unknown_layout.addLayout(assign)
        outer.addWidget(self.unknown_box)

        bottom = QHBoxLayout()
        self.saved_label = QLabel("")
        self.saved_label.setOpenExternalLinks(False)
        self.export_xlsx_button = QPushButton("Export &Excel…")
        self.export_csv_button = QPushButton("Export CS&V…")
        self.export_json_button = QPushButton("Save as &JSON…")
        bottom.addWidget(self.saved_label, 1)
        for button in (self.export_xlsx_button, self.export_csv_button, self.export_json_button):
            bottom.addWidget(button)
        outer.addLayout(bottom)


class ReviewController(QObject):
    """Drives the Review screen: shows a report, applies the teacher's overrides, keeps history, exports."""

    changed = Signal()
    keep_failed = Signal(str)  # a history entry could not be written (from the history thread)

    def __init__(self, view: ReviewView | None = None, parent=None):
        super().__init__(parent)
        self.view = view or ReviewView()
        self.settings = app_settings()
        self.base_report = None
        self.roster = None  # the job's class list: stands in when the class is gone from disk
        self.overrides: dict[str, str] = {}
        self.evidence = EvidenceSnapshot()
        self.unknown_groups: list = []  # UnknownPersonEvidence, as numbered in the report
        self.assigned: dict[int, str] = {}
        self.last_export: Path | None = None
        self.saved_path: Path | None = None  # this report's entry in the history
        self.exported = True  # nothing to lose until a report is loaded
        self._writes: list = []  # history writes under way
        self.keep_failed.connect(lambda details: show_error(self.view, "The report could not be kept in the app's history; export it to keep it.", details))
        self.model = attendance_model(self, lambda: icon_size(self.view, 1.8), margins=True)  # small photos: more rows on a laptop
        v = self.view
        self.sorted = sorted_view(v.table, self.model)
        v.needs_a_look_first.toggled.connect(self.sorted.set_needs_a_look_first)
        v.table.horizontalHeader().sectionClicked.connect(lambda _: v.needs_a_look_first.setChecked(False))
        v.needs_a_look_first.setChecked(True)  # close calls first: where the teacher's look counts most
        v.history_class.currentIndexChanged.connect(lambda _: self._fill_history())
        v.history.activated.connect(lambda index: self.open_saved(v.history.itemData(index)))
        _style_table(v.table, 1)
        thumb = icon_size(v, 1.8)
        v.table.setIconSize(QSize(thumb, thumb))
        v.table.verticalHeader().setDefaultSectionSize(thumb + 6)
        crop = icon_size(v, 5)
        v.evidence.setIconSize(QSize(crop, crop))
        v.evidence.setGridSize(QSize(int(crop * 1.5), crop + 3 * v.fontMetrics().height()))
        unknown = icon_size(v, 3.5)
        v.unknowns.setIconSize(QSize(unknown, unknown))
        # an unsure group has a third line ('looks like Ann or Ben'), and many groups a scroll bar: 3 lines cut it in half
        v.unknowns.setFixedHeight(unknown + 5 * v.fontMetrics().height())
        v.table.selectionModel().currentRowChanged.connect(lambda current, _: self.show_evidence(self.sorted.source_row(current.row())))
        v.present_button.clicked.connect(lambda: self._override_selected(PRESENT))
        v.absent_button.clicked.connect(lambda: self._override_selected(ABSENT))
        v.undo_button.clicked.connect(lambda: self._override_selected(None))
        v.assign_button.clicked.connect(self._assign_selected)
        v.unknowns.currentRowChanged.connect(self._offer_look_alikes)
        v.export_xlsx_button.clicked.connect(lambda: self.export("xlsx"))
        v.export_csv_button.clicked.connect(lambda: self.export("csv"))
        v.export_json_button.clicked.connect(lambda: self.export("json"))
        v.saved_label.linkActivated.connect(lambda link: QDesktopServices.openUrl(QUrl(link)))
        for key, status in (("P", PRESENT), ("A", ABSENT)):
            shortcut = QShortcut(QKeySequence(key), v.table)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(lambda status=status: self._override_selected(status))
        self._set_enabled(False)
        self.refresh_history()

    # -- loading ---------------------------------------------------------------------------------
    def load(self, report, job=None) -> None:
        """Show a new report from a job (its evidence and unknown people through the job's
        facade) and keep it in the class's history."""
        if job is None:
            self.load_with_evidence(report, EvidenceSnapshot(), ())
        else:
            self.load_with_evidence(report, job.evidence_snapshot(), job.unknown_groups(), job.roster)

    def load_with_evidence(self, report, evidence: EvidenceSnapshot, unknown_groups, roster=None) -> None:
        """Show a new report with the crops behind it and its unknown people (UnknownGroups, the
        report's own), and keep it in the class's history."""
        from p2p_attendance.report.history import new_report_path

        self._show(report, {}, evidence, unknown_groups, roster)
        self.saved_path = new_report_path(report)
        self.exported = False
        self._keep()
        self.refresh_history(select=self.saved_path)

    def open_saved(self, path) -> None:
        """Reopen a report from the history (its faces are not kept: no evidence, no unknowns)."""
        from p2p_attendance.report.history import load_report

        if path is None or (self.saved_path is not None and Path(path) == self.saved_path):
            return
        try:
            saved = load_report(Path(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            show_error(self.view, "This report could not be opened.", f"{path}: {type(exc).__name__}: {exc}")
            return
        self._show(saved.report, saved.overrides)
        self.saved_path = saved.path
        self.exported = saved.exported
        self.view.unknown_box.setTitle("Faces not on the class list (not kept with earlier reports)")

    def needs_saving(self) -> bool:
        """A report is shown that was not exported since it was made or last changed."""
        return self.base_report is not None and not self.exported

    def _keep(self) -> None:
        """Write the report's history entry on the history thread (fsync never blocks the GUI), in order."""
        from p2p_attendance.report.history import save_report

        if self.saved_path is None or self.base_report is None:
            return
        path, report, overrides, exported = self.saved_path, self.base_report, dict(self.overrides), self.exported

        def write():
            try:
                save_report(path, report, overrides, exported)
            except (OSError, ValueError) as exc:
                self.keep_failed.emit(f"{type(exc).__name__}: {exc}")

        self._writes = [f for f in self._writes if not f.done()] + [_history_writer.submit(write)]

    def flush_history(self, timeout: float = 10.0) -> None:
        """Wait for the history writes still under way (quitting, tests)."""
        from concurrent.futures import wait

        wait(self._writes, timeout=timeout)
        self._writes = [f for f in self._writes if not f.done()]

    def refresh_history(self, select: Path | None = None) -> None:
        from p2p_attendance import paths
        from p2p_attendance.roster.store import list_classes

        combo = self.view.history_class
        current = self.base_report.job.class_name if self.base_report is not None else combo.currentData()
        names = {c.name for c in list_classes()}
        names |= {_class_of(folder) for folder in paths.history_dir().iterdir() if folder.is_dir()} - {None}
        combo.blockSignals(True)
        combo.clear()
        for name in sorted(names, key=str.casefold):
            combo.addItem(name, name)
        combo.setCurrentIndex(max(0, combo.findData(current)))
        combo.blockSignals(False)
        self._fill_history(select)

    def _fill_history(self, select: Path | None = None) -> None:
        """The class's reports, newest first: those on disk, with the shown one as it is now
        (its latest write may still be under way)."""
        from p2p_attendance.report.history import list_reports

        combo = self.view.history
        name = self.view.history_class.currentData()
        combo.clear()
        entries = {str(e.path): (e.report, e.overrides, e.exported) for e in (list_reports(name) if name else [])}
        if self.saved_path is not None and self.base_report is not None and self.base_report.job.class_name == name:
            entries[str(self.saved_path)] = (self.base_report, self.overrides, self.exported)
        for path, (report, overrides, exported) in sorted(entries.items(), key=lambda item: (item[1][0].job.started_at, item[0]), reverse=True):
            present = sum(1 for s in report.students if (overrides.get(s.id) or s.status) == PRESENT)
            text = f"{report.job.started_at[:16].replace('T', ' ')} · {Path(report.job.video).name} · {present} of {len(report.students)} present"
            if report.job.partial:
                text += " · partial"
            if not exported:
                text += " · not exported"
            combo.addItem(text, path)
        if not entries:
            combo.addItem("no reports of this class yet", None)
        wanted = select or self.saved_path
        combo.setCurrentIndex(max(0, combo.findData(str(wanted)) if wanted else 0))

    def _show(self, report, overrides: dict, evidence: EvidenceSnapshot | None = None, unknown_groups=(), roster=None) -> None:
        self.base_report = report
        self.roster = roster
        self.overrides = dict(overrides)
        self.view.saved_label.setText("")  # the last report's "Saved …" line is not this one's
        self.last_export = None
        self.assigned = {}
        self.evidence = evidence or EvidenceSnapshot()
        self.model.clear()
        self._fill_assign_combo()
        self._refresh()
        self._set_enabled(True)
        # The report's own unknown people (grouped once, off the GUI thread, with the report).
        self._show_unknowns(with_crops(unknown_groups, self.evidence))
        if self.model.rowCount():
            self.view.table.selectRow(0)
            self.show_evidence(self.sorted.source_row(0))

    def _set_enabled(self, enabled: bool) -> None:
        v = self.view
        for widget in (v.present_button, v.absent_button, v.undo_button, v.assign_button, v.export_xlsx_button, v.export_csv_button, v.export_json_button):
            widget.setEnabled(enabled)

    def report(self):
        """The report as it will be exported: the rule's verdicts with the teacher's overrides."""
        from p2p_attendance.attendance.review import apply_overrides

        if self.base_report is None:
            return None
        named = [self.unknown_groups[i].label for i in self.assigned]  # faces the teacher named
        return apply_overrides(self.base_report, self.overrides, named) if self.overrides or named else self.base_report

    def _refresh(self) -> None:
        from p2p_attendance.roster.store import thumbnail_path

        report = self.report()
        if report is None:
            return
        for student in report.students:
            thumbnail = str(thumbnail_path(report.job.class_name, student.id))
            self.model.upsert(student.id, AttendanceRow.of(student, thumbnail, live=False, threshold=report.presence_threshold,
                                                           unknown_faces=report.unknown_faces))
        self.view.summary.setText(summary_html(report))
        self.changed.emit()

    # -- evidence --------------------------------------------------------------------------------
    def show_evidence(self, row: int) -> None:
        v = self.view
        v.evidence.clear()
        student = self.model.object_at(row)
        if student is None:
            return
        items = self.evidence.of_student(student.id)  # in time order
        v.evidence_box.setTitle(f"What the app saw: {student.name}")
        close = ""
        if student.close and self.base_report is not None:
            m = Margin(student.presence, self.base_report.presence_threshold, True)
            side = "just above" if m.above else "just below"
            close = f"<b>Close call</b> ({m.of_threshold()}, {side} the threshold): a look decides it. "
        name = html.escape(student.name)
        look = ""
        if student.look_alikes:  # that face is in the strip: selected there, the assign list offers its look-alikes first
            groups = " or ".join(f"<b>{html.escape(label)}</b>" for label in student.look_alikes)
            labels = [person.label for person in self.unknown_groups]
            if student.look_alikes[0] in labels:
                v.unknowns.setCurrentRow(labels.index(student.look_alikes[0]))
                look = (f"{groups} (selected below, under the faces not on the class list) may be {name}: the app was not "
                        "sure enough to name that face. Assign it if it is them. ")
            else:  # a report reopened from the history: its faces were not kept
                look = f"{groups} may be {name}: the app was not sure enough to name that face (its faces are kept only with the latest job). "
        if not items:
            verdict = "Your verdict: present." if student.status == PRESENT else ""
            v.evidence_hint.setText(close + f"{name} was not recognised in any frame. " + look + verdict)
        else:
            v.evidence_hint.setText(
                close
                + f"Seen in {student.frames_seen} frames, first at {format_time(student.first_seen_s)}, last at {format_time(student.last_seen_s)}. "
                + look + "Closest matches (a lower distance is a surer match):"
            )
        size = v.evidence.iconSize().width()
        for e in items:
            item = QListWidgetItem(QIcon(jpeg_pixmap(e.jpeg, size)), f"at {format_time(e.time_s)}\ndistance {e.distance:.2f}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            v.evidence.addItem(item)

    # -- overrides -------------------------------------------------------------------------------
    def selected_id(self) -> str | None:
        index = self.view.table.currentIndex()
        return self.model.key_at(self.sorted.source_row(index.row())) if index.isValid() else None

    def _override_selected(self, status: str | None) -> None:
        sid = self.selected_id()
        if sid is not None:
            self.set_override(sid, status)

    def set_override(self, student_id: str, status: str | None) -> None:
        if status is None:
            self.overrides.pop(student_id, None)
        else:
            self.overrides[student_id] = status
        self._changed()

    def _changed(self) -> None:
        """The teacher edited the verdicts: the history keeps the edit, quitting asks again."""
        self.exported = False
        if self.last_export is not None:
            self.view.saved_label.setText(f"{self.view.saved_label.text()} · <b>changed since</b>: export again to keep the change in the file")
        self._refresh()
        self._keep()
        self._fill_history()

    # -- unknown faces ---------------------------------------------------------------------------
    def _show_unknowns(self, people) -> None:
        """people: UnknownPersonEvidence, named and numbered as in the report."""
        self.unknown_groups = people
        v = self.view
        v.unknowns.clear()
        size = v.unknowns.iconSize().width()
        names = {s.id: s.name for s in self.base_report.students} if self.base_report is not None else {}
        for index, person in enumerate(people):
            icon = QIcon(jpeg_pixmap(person.crops[0].jpeg, size)) if person.crops else QIcon()
            text = f"{person.label}\n{len(person.group.times)}× from {format_time(person.group.times[0])}"
            item = QListWidgetItem(icon, text)
            if person.group.unsure:  # a student the rule could not tell from another: the teacher's look names them
                looks = looks_like_text(person.group.looks_like_names(names))
                item.setText(f"{text}\n{looks}")
                item.setToolTip(f"Close to these students' photos, but not surely one of them: {looks}. Pick the student below and assign.")
            item.setData(Qt.ItemDataRole.UserRole, index)
            v.unknowns.addItem(item)
        if people:
            v.unknown_box.setTitle(f"Faces not on the class list ({groups_count_text(p.group for p in people)}): pick one, say who it is")
            v.unknowns.setCurrentRow(0)
        else:
            v.unknown_box.setTitle("Faces not on the class list (none)")

    def _fill_assign_combo(self, first: tuple[str, ...] = ()) -> None:
        """The students a face can be assigned to, in class order; `first` (an unsure group's
        look-alikes, nearest first) above the rest. Nobody is preselected: never a one-click wrong
        assignment."""
        combo = self.view.assign_combo
        combo.clear()
        combo.addItem("— choose a student —", None)
        students = self.base_report.students if self.base_report is not None else []
        ahead = [s for sid in first for s in students if s.id == sid]
        for student in ahead:
            combo.addItem(student.name, student.id)
        if ahead:
            combo.insertSeparator(combo.count())
        for student in students:
            if student not in ahead:
                combo.addItem(student.name, student.id)

    def _offer_look_alikes(self, row: int) -> None:
        """An unsure face selected in the strip: the students it looks like head the assign list."""
        item = self.view.unknowns.item(row)
        if item is not None and 0 <= item.data(Qt.ItemDataRole.UserRole) < len(self.unknown_groups):
            self._fill_assign_combo(self.unknown_groups[item.data(Qt.ItemDataRole.UserRole)].group.looks_like)

    def _assign_selected(self) -> None:
        item = self.view.unknowns.currentItem()
        sid = self.view.assign_combo.currentData()
        if item is None or sid is None:
            show_error(self.view, "Pick a face in the strip and a student in the list first.")
            return
        self.assign_unknown(item.data(Qt.ItemDataRole.UserRole), sid, self.view.add_to_class.isChecked())

    def assign_unknown(self, group_index: int, student_id: str, add_to_roster: bool) -> None:
        """The teacher says this unknown face is a student: present (manual), optionally enrolled."""
        from p2p_attendance.roster.store import FaceSample, add_samples

        person = self.unknown_groups[group_index]
        self.assigned[group_index] = student_id
        self.overrides[student_id] = PRESENT
        if add_to_roster and self.base_report is not None:
            video = self.base_report.job.video
            samples = [FaceSample(f"from {video} at {format_time(e.time_s)}", e.jpeg, e.encoding) for e in person.crops if e.encoding is not None][:3]
            try:
                add_samples(self.base_report.job.class_name, student_id, samples, fallback=self.roster)  # a few views, in time order
            except OSError as exc:
                show_error(self.view, f"The face could not be added to the class '{self.base_report.job.class_name}'.", str(exc))
        name = next((s.name for s in self.base_report.students if s.id == student_id), student_id)
        item = self.view.unknowns.item(group_index)
        if item is not None:
            item.setText(f"→ {name}")
            self.view.unknowns.viewport().update()  # the item shrank to one line: repaint what its old lines covered
        self._changed()

    # -- export ----------------------------------------------------------------------------------
    def default_name(self, kind: str) -> str:
        report = self.report()
        day = report.job.started_at[:10] if report and report.job.started_at else dt.date.today().isoformat()
        base = f"{report.job.class_name if report else 'attendance'} {day}"
        return "".join(c for c in base if c not in '\\/:*?"<>|') + f".{kind}"

    def export(self, kind: str, path: str | None = None) -> Path | None:
        from p2p_attendance.report.writers import format_for_path, writer_for

        report = self.report()
        if report is None:
            show_error(self.view, "There is no report yet: take attendance first.")
            return None
        if path is None:
            folder = setting(self.settings, "paths/export_dir", str(Path.home()))
            filters = {"xlsx": "Excel workbook (*.xlsx)", "csv": "CSV file (*.csv)", "json": "JSON report (*.json)"}
            path, chosen = QFileDialog.getSaveFileName(
                self.view, "Save the attendance", str(Path(folder) / self.default_name(kind)), ";;".join(filters.values()), filters[kind]
            )
            if not path:
                return None
            kind = next((k for k, f in filters.items() if f == chosen), kind)
        try:
            kind = format_for_path(path)  # the name's extension picks the writer, as on the command line
        except ValueError:
            path += f".{kind}"  # no report extension typed: the format asked for
        writer = writer_for(kind)
        try:
            written = writer(report, path)
        except OSError as exc:
            show_error(self.view, f"The file could not be saved to {path}. Is it open in another program, or is the folder read-only?",
                       f"{type(exc).__name__}: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - a writer that fails on the report's content: say so, keep the app
            show_error(self.view, f"The {kind.upper()} file could not be written ({type(exc).__name__}); the other formats may still work.",
                       f"{type(exc).__name__}: {exc}")
            return None
        self.settings.setValue("paths/export_dir", str(Path(written).parent))
        self.last_export = Path(written)
        self.exported = True
        self._keep()
        self._fill_history()
        url = QUrl.fromLocalFile(str(Path(written).parent)).toString()
        self.view.saved_label.setText(f'Saved {html.escape(Path(written).name)} · <a href="{url}">open folder</a>')
        return Path(written)


def summary_html(report) -> str:
    """The report's summary above the table, as rich text: counts, the rule, frames and who did them, warnings."""
    job = report.job
    present = sum(1 for s in report.students if s.status == PRESENT)
    manual = sum(1 for s in report.students if s.manual)
    helpers = ", ".join(f"{html.escape(p.name)} ({p.frames})" for p in job.peers) or "none"
    parts = [
        f"<b>{html.escape(job.class_name)}</b> · {html.escape(job.video)} · {html.escape(job.started_at[:16].replace('T', ' '))}",
        f"<b>{present} present, {len(report.students) - present} absent</b> of {len(report.students)}"
        + (f" · {manual} set by you" if manual else "")
        + f" · {sum(not u.unsure for u in report.unknown_faces)} unknown face(s)"
        + (f" · {sum(u.unsure for u in report.unknown_faces)} unsure (look like students)" if any(u.unsure for u in report.unknown_faces) else ""),
        f"Rule: present when seen in at least {round(report.presence_threshold * 100)} % of the lecture "
        f"(checked in {len(report.window_starts_s)} parts of {report.window_s:.0f} s) · "
        f"{job.frames_processed} of {job.frames_total} frames looked at in {job.elapsed_s:.0f} s · frames done by: {helpers}",
    ]
    if job.frames_processed < job.frames_total:
        parts.append("⚠ The job was stopped early: the report covers only the frames looked at.")
    parts += [f"⚠ {html.escape(w)}" for w in job.warnings]
    return "<br>".join(parts)


def _class_of(folder: Path) -> str | None:
    """The class name of a history folder (its folder name is only a slug): from its newest report."""
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            return json_class_name(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def json_class_name(path: Path) -> str:
    """The class name stored in a JSON report file."""
    import json

    return str(json.loads(path.read_text(encoding="utf-8"))["report"]["job"]["class_name"])
