"""Classes: create a class, enroll a folder of photos (in a worker), see and fix the students."""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from p2p_attendance.gui.common import Task, app_settings, drop_zone, file_pixmap, forget_pixmap, icon_size, screen_title, setting, show_error
from p2p_attendance.gui.models import Column, KeyedTableModel, sorted_view
from p2p_attendance.gui.take import _style_table


def engine_factory():
    """The FaceEngine maker ClassesController enrolls with by default (a parameter, so it can be replaced)."""
    from p2p_attendance.compute.engine import FaceEngine

    return FaceEngine()


class ClassesView(QWidget):
    """The Classes screen's layout: the class list and join code, the enrolling progress, the students."""

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        title = screen_title("Classes")
        outer.addWidget(title)
        splitter = QSplitter(Qt.Orientation.Horizontal)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        list_label = QLabel("&Your classes:")
        self.class_list = QListWidget()
        list_label.setBuddy(self.class_list)
        self.new_button = QPushButton("&New class…")
        self.delete_button = QPushButton("&Delete class…")
        left_layout.addWidget(list_label)
        left_layout.addWidget(self.class_list, 1)
        left_layout.addWidget(self.new_button)
        left_layout.addWidget(self.delete_button)
        # The class's join code: the same every lecture, so students type it once (roster/join_codes.py).
        self.code_box = QGroupBox("Join code for helpers")
        code_layout = QHBoxLayout(self.code_box)
        self.code_label = QLabel("––––––")
        code_font = self.code_label.font()
        code_font.setBold(True)
        code_font.setPointSizeF(max(8.0, code_font.pointSizeF()) * 1.4)
        self.code_label.setFont(code_font)
        self.code_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.code_label.setToolTip("Students type this code once on their Share my CPU screen; every job of this class uses it.")
        self.new_code_button = QPushButton("New c&ode…")
        self.new_code_button.setToolTip("Give the class a new code (if the old one leaked); students then type the new one.")
        code_layout.addWidget(self.code_label, 1)
        code_layout.addWidget(self.new_code_button)
        left_layout.addWidget(self.code_box)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.drop_zone, self.drop_label, self.add_button = drop_zone(
            "Drop a folder of student photos here to add them: one photo per student named after them "
            "(<i>ada_lovelace.jpg</i>), or one sub-folder per student.",
            "Add &photos from a folder…",
        )
        right_layout.addWidget(self.drop_zone)
        self.busy_row = QWidget()
        busy_layout = QHBoxLayout(self.busy_row)
        busy_layout.setContentsMargins(0, 0, 0, 0)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setFormat("Looking at the photos…")
        self.busy.setTextVisible(True)
        self.cancel_button = QPushButton("&Cancel")
        self.cancel_button.setToolTip("Stop after the photo being looked at; the class is left as it was.")
        busy_layout.addWidget(self.busy, 1)
        busy_layout.addWidget(self.cancel_button)
        self.busy_row.hide()
        right_layout.addWidget(self.busy_row)

        self.students_box = QGroupBox("Students")
        students_layout = QVBoxLayout(self.students_box)
        self.students = QTableView()
        students_layout.addWidget(self.students, 1)
        buttons = QHBoxLayout()
        self.rename_button = QPushButton("&Rename…")
        self.remove_button = QPushButton("Re&move")
        buttons.addWidget(self.rename_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        students_layout.addLayout(buttons)
        right_layout.addWidget(self.students_box, 3)

        self.problems_box = QGroupBox("Photos that could not be used")
        problems_layout = QVBoxLayout(self.problems_box)
        self.problems = QTableView()
        problems_layout.addWidget(self.problems)
        self.problems_box.hide()
        right_layout.addWidget(self.problems_box, 1)

        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        outer.addWidget(splitter, 1)


class ClassesController(QObject):
    """Drives the Classes screen: new and deleted classes, join codes, photo folders enrolled on a worker thread, students renamed or removed."""

    classes_changed = Signal(str)  # the class that changed
    enrolled = Signal(object)  # EnrollResult
    enroll_progress = Signal(int, int, str)  # photos done, photos in all, the last photo (from the worker)

    def __init__(self, view: ClassesView | None = None, parent=None, engine_factory=engine_factory):
        super().__init__(parent)
        self.view = view or ClassesView()
        self.settings = app_settings()
        self.engine_factory = engine_factory
        self.roster = None
        self.task: Task | None = None
        self.last_result = None
        self.cancel_enroll = threading.Event()
        self.enroll_progress.connect(self._show_enroll_progress)
        self.view.cancel_button.clicked.connect(self.cancel)
        v = self.view
        self.students_model = KeyedTableModel(
            [
                Column("Photo", lambda s: None, decoration=lambda s: self._thumb(s.id)),
                Column("Name", lambda s: s.name, editable=True),
                Column("ID", lambda s: s.id),
                Column("Photos", lambda s: len(s.photos), align_right=True),
            ],
            self,
        )
        self.students_model.on_edit = self._edited
        self.problems_model = KeyedTableModel([Column("Photo", lambda p: p.file), Column("Problem", lambda p: p.reason)], self)
        self.students_view = sorted_view(v.students, self.students_model)
        _style_table(v.students, 1)
        v.students.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed | QAbstractItemView.EditTrigger.DoubleClicked)
        size = icon_size(v, 2.5)
        v.students.setIconSize(QSize(size, size))
        v.students.verticalHeader().setDefaultSectionSize(size + 6)
        sorted_view(v.problems, self.problems_model)
        _style_table(v.problems, 1)

        v.class_list.currentTextChanged.connect(self.select_class)
        v.new_button.clicked.connect(self.new_class)
        v.delete_button.clicked.connect(self.delete_class)
        v.add_button.clicked.connect(self.browse_folder)
        v.rename_button.clicked.connect(self.rename_selected)
        v.remove_button.clicked.connect(self.remove_selected)
        v.new_code_button.clicked.connect(lambda: self.rotate_code())
        remove = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), v.students)
        remove.setContext(Qt.ShortcutContext.WidgetShortcut)
        remove.activated.connect(self.remove_selected)
        self.refresh()

    def _thumb(self, student_id: str):
        from p2p_attendance.roster.store import thumbnail_path

        if self.roster is None:
            return None
        return file_pixmap(thumbnail_path(self.roster.name, student_id), icon_size(self.view, 2.5))

    # -- classes ---------------------------------------------------------------------------------
    def refresh(self, select: str | None = None) -> None:
        from p2p_attendance.roster.store import list_classes

        v = self.view
        current = select or (self.roster.name if self.roster else setting(self.settings, "classes/current", ""))
        names = [c.name for c in list_classes()]
        if self.roster is not None and self.roster.name not in names and self.roster.students == []:
            names.append(self.roster.name)  # a new, still empty class
        v.class_list.blockSignals(True)
        v.class_list.clear()
        v.class_list.addItems(names)
        v.class_list.blockSignals(False)
        if names:
            matches = v.class_list.findItems(current, Qt.MatchFlag.MatchExactly) if current else []
            v.class_list.setCurrentItem(matches[0] if matches else v.class_list.item(0))
            self.select_class(v.class_list.currentItem().text())
        else:
            self.select_class("")

    def select_class(self, name: str) -> None:
        from p2p_attendance.errors import RosterError
        from p2p_attendance.roster.store import ClassRoster, load_class

        v = self.view
        if not name:
            self.roster = None
            self.students_model.clear()
            v.students_box.setTitle("Students: create a class first (New class…)")
            self._enable(False)
            return
        try:
            self.roster = load_class(name)
        except RosterError:
            self.roster = ClassRoster(name)
        self.settings.setValue("classes/current", name)
        self._show_students()
        self._enable(True)

    def _enable(self, has_class: bool) -> None:
        v = self.view
        busy = self.task is not None
        for widget in (v.add_button, v.rename_button, v.remove_button, v.delete_button):
            widget.setEnabled(has_class and not busy)
        v.new_code_button.setEnabled(has_class)
        self._show_code()

    def _show_code(self) -> None:
        from p2p_attendance.roster.join_codes import class_join_code

        self.view.code_label.setText(class_join_code(self.roster.name) if self.roster is not None else "––––––")

    def rotate_code(self, ask: bool = True) -> str | None:
        """A new join code for the class (asks first): for a code that leaked."""
        from PySide6.QtWidgets import QMessageBox

        from p2p_attendance.roster.join_codes import rotate_join_code

        if self.roster is None:
            return None
        if ask:
            answer = QMessageBox.question(
                self.view, "New join code",
                f"Give '{self.roster.name}' a new join code? Students must type the new code; the old one stops working from the next job.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return None
        code = rotate_join_code(self.roster.name)
        self._show_code()
        return code

    def _show_students(self) -> None:
        self.students_model.sync([(s.id, s) for s in self.roster.students])
        self.view.students_box.setTitle(f"Students of {self.roster.name} ({len(self.roster.students)})")

    def new_class(self, name: str | None = None) -> None:
        from p2p_attendance.errors import RosterError
        from p2p_attendance.roster.store import ClassRoster, check_name, save_class

        if not name:
            name, ok = QInputDialog.getText(self.view, "New class", "Name of the class (for example 'Biology 2B'):")
            if not ok:
                return
        name = name.strip()
        if not name:
            return
        try:
            name = check_name(name, "class name")
        except RosterError as exc:
            show_error(self.view, str(exc))
            return
        existing = [self.view.class_list.item(i).text() for i in range(self.view.class_list.count())]
        if name not in existing:
            save_class(ClassRoster(name))
        self.refresh(select=name)
        self.classes_changed.emit(name)

    def delete_class(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        from p2p_attendance.roster.store import delete_class

        if self.roster is None:
            return
        answer = QMessageBox.question(
            self.view, "Delete class", f"Delete the class '{self.roster.name}' and its enrolled faces? Your photo folder is not touched."
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        name = self.roster.name
        delete_class(name)
        self.roster = None
        self.refresh()
        self.classes_changed.emit(name)

    # -- enrolling -------------------------------------------------------------------------------
    def browse_folder(self) -> None:
        start = setting(self.settings, "paths/photos_dir", str(Path.home()))
        folder = QFileDialog.getExistingDirectory(self.view, "Folder with the students' photos", start)
        if folder:
            self.enroll(folder)

    def enroll(self, folder: str, class_name: str | None = None) -> Task | None:
        """Enroll a folder into the current class (or class_name, created if new), off the GUI thread."""
        from p2p_attendance.errors import EnrollCancelled
        from p2p_attendance.roster.enroll import enroll_folder

        if self.task is not None:
            show_error(self.view, "Photos are still being added; wait for that to finish.")
            return None
        name = class_name or (self.roster.name if self.roster else Path(folder).name)
        self.settings.setValue("paths/photos_dir", str(Path(folder).parent))
        self.view.busy.setRange(0, 0)
        self.view.busy.setFormat(f"Looking at the photos in {Path(folder).name}…")
        self.view.cancel_button.setEnabled(True)
        self.view.busy_row.show()
        self.cancel_enroll = cancel = threading.Event()
        progress = self.enroll_progress.emit  # queued onto the GUI thread

        def run():
            try:
                return enroll_folder(folder, name, self.engine_factory, progress=progress, cancelled=cancel.is_set)
            except EnrollCancelled:
                return None

        self.task = Task(run, message=f"The photos in {folder} could not be added.")
        self.task.done.connect(self._enrolled)
        self.task.failed.connect(self._enroll_failed)
        self._enable(True)
        return self.task.start()

    def cancel(self) -> None:
        """Stop enrolling after the photo being looked at; nothing is saved."""
        if self.task is not None:
            self.cancel_enroll.set()
            self.view.cancel_button.setEnabled(False)
            self.view.busy.setFormat("Cancelling…")

    def _show_enroll_progress(self, done: int, total: int, photo: str) -> None:
        if self.task is None or self.cancel_enroll.is_set():
            return
        self.view.busy.setRange(0, max(1, total))
        self.view.busy.setValue(done)
        self.view.busy.setFormat(f"%v of %m photos looked at ({photo})")

    def _enrolled(self, result) -> None:
        self.task = None
        self.view.busy_row.hide()
        if result is None:  # cancelled: the class is as it was
            self._enable(self.roster is not None)
            self.window_message("Adding photos was cancelled; the class was not changed.")
            return
        self.last_result = result
        for sid in result.enrolled:
            from p2p_attendance.roster.store import thumbnail_path

            forget_pixmap(thumbnail_path(result.roster.name, sid))
        self.roster = result.roster
        self.refresh(select=result.roster.name)
        self.problems_model.sync([(p.file, p) for p in result.problems])
        box = self.view.problems_box
        box.setVisible(bool(result.problems))
        box.setTitle(
            f"{len(result.problems)} photo(s) could not be used; the others were added. "
            "Replace them with a clear photo of the student alone and add the folder again."
        )
        self.classes_changed.emit(result.roster.name)
        self.enrolled.emit(result)

    def window_message(self, text: str) -> None:
        window = self.view.window()
        if hasattr(window, "statusBar"):
            window.statusBar().showMessage(text, 10_000)

    def _enroll_failed(self, message: str, details: str) -> None:
        self.task = None
        self.view.busy_row.hide()
        self._enable(self.roster is not None)
        show_error(self.view, message, details)

    # -- students --------------------------------------------------------------------------------
    def selected_id(self) -> str | None:
        index = self.view.students.currentIndex()
        return self.students_model.key_at(self.students_view.source_row(index.row())) if index.isValid() else None

    def _edited(self, student, column: int, value: str) -> bool:
        if column != 1 or not value.strip():
            return False
        self.rename(student.id, value)
        return True

    def rename_selected(self) -> None:
        sid = self.selected_id()
        if sid is None or self.roster is None:
            return
        student = self.roster.student(sid)
        name, ok = QInputDialog.getText(self.view, "Rename student", "Name:", text=student.name)
        if ok and name.strip():
            self.rename(sid, name)

    def rename(self, student_id: str, name: str) -> None:
        from p2p_attendance.errors import RosterError
        from p2p_attendance.roster.store import rename_student, save_class

        try:
            rename_student(self.roster, student_id, name)
        except RosterError as exc:
            show_error(self.view, str(exc))
            return
        save_class(self.roster)
        self.students_model.upsert(student_id, self.roster.student(student_id))
        self.classes_changed.emit(self.roster.name)

    def remove_selected(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        sid = self.selected_id()
        if sid is None or self.roster is None:
            return
        student = self.roster.student(sid)
        answer = QMessageBox.question(self.view, "Remove student", f"Remove {student.name} from {self.roster.name}?")
        if answer == QMessageBox.StandardButton.Yes:
            self.remove(sid)

    def remove(self, student_id: str) -> None:
        from p2p_attendance.roster.store import remove_student, save_class, thumbnail_path

        forget_pixmap(thumbnail_path(self.roster.name, student_id))
        remove_student(self.roster, student_id)
        save_class(self.roster)
        self._show_students()
        self.classes_changed.emit(self.roster.name)
