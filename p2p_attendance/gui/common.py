"""Small GUI helpers shared by the screens: background tasks, error boxes, settings, images.

Nothing here blocks the GUI thread: work runs on plain Python threads and reports back through
Qt signals, which Qt queues onto the GUI thread because the receiving QObject lives there.
"""
from __future__ import annotations

import logging
import os
import threading
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

from p2p_attendance.errors import UserError
from p2p_attendance.fileio import PRIVATE_DIR, private_dir, private_file

log = logging.getLogger(__name__)

ORGANIZATION = "p2p-attendance"
APPLICATION = "p2p-attendance"
SETTINGS_ENV = "P2P_ATTENDANCE_SETTINGS"  # a file path: tests and portable installs

# Status hints: mid-tone, translucent, so they read on light and dark palettes alike.
PRESENT_TINT = QColor(46, 160, 67, 70)
ABSENT_TINT = QColor(218, 54, 51, 70)
PRESENT_TEXT = QColor(46, 160, 67)
ABSENT_TEXT = QColor(218, 54, 51)
WARNING_TINT = QColor(230, 140, 0, 90)  # amber: a helper whose results were rejected


def app_settings() -> QSettings:
    """The app's saved settings (an INI file; P2P_ATTENDANCE_SETTINGS points it elsewhere, e.g. in tests)."""
    path = os.environ.get(SETTINGS_ENV)
    if path:
        settings = QSettings(path, QSettings.Format.IniFormat)
    else:
        settings = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)
    # The settings name the last video, class and connect line (join code included): 0600 before
    # Qt first writes it. QSettings saves through QSaveFile, which keeps the mode of the file it
    # replaces, so a file made private here stays private across saves.
    target = Path(settings.fileName())
    if path:
        target.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)  # a folder given to us: not tightened
    else:
        private_dir(target.parent)  # our own folder under the user's config dir
    private_file(target)
    return settings


def setting(settings: QSettings, key: str, default, kind=None):
    """A saved setting read as `kind` (bool understands INI's strings); the default when it is unreadable."""
    value = settings.value(key, default)
    if kind is bool:
        return value in (True, "true", "True", "1", 1)
    if kind is not None:
        try:
            return kind(value)
        except (TypeError, ValueError):
            return default
    return value


class Task(QObject):
    """Runs fn(*args) on a worker thread; done(result) or failed(message, details) on the GUI thread."""

    done = Signal(object)
    failed = Signal(str, str)

    _running: set["Task"] = set()  # keeps Python wrappers alive until the thread reports

    def __init__(self, fn, *args, message: str = "Something went wrong.", parent: QObject | None = None):
        super().__init__(parent)
        self.fn, self.args, self.message = fn, args, message
        self.thread: threading.Thread | None = None
        self.done.connect(self._release)
        self.failed.connect(self._release)

    def start(self) -> "Task":
        Task._running.add(self)
        self.thread = threading.Thread(target=self._run, name=f"gui-task-{getattr(self.fn, '__name__', 'task')}", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            result = self.fn(*self.args)
        except Exception as exc:  # noqa: BLE001 - shown to the teacher, details one click away
            log.exception("background task failed")
            self.failed.emit(teacher_message(exc, self.message), traceback.format_exc())
            return
        self.done.emit(result)

    def _release(self, *_):
        Task._running.discard(self)


def teacher_message(exc: BaseException, fallback: str) -> str:
    """Our own errors (errors.UserError: VideoError, RosterError, ...) carry a message meant for
    people; anything else gets the caller's generic fallback (the caller logs the traceback)."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"{fallback} A file is missing: {exc.filename}"
    if isinstance(exc, PermissionError):
        return f"{fallback} The app may not write or read {exc.filename}."
    return fallback


def log_hint() -> str:
    """Where this session's log is, for the details of error boxes ('' when there is none)."""
    from p2p_attendance.logs import latest_log

    try:
        path = latest_log()
    except OSError:
        return ""
    return f"The log of this session (Help → Show log): {path}" if path else ""


def show_error(parent: QWidget | None, text: str, details: str = "", title: str = "P2P Attendance") -> QMessageBox:
    """A message a teacher understands; the technical details behind 'Show Details...'."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    if details:
        hint = log_hint()
        box.setDetailedText(f"{hint}\n\n{details}" if hint else details)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()  # window-modal, never blocks the event loop
    return box


def ask(parent: QWidget | None, title: str, text: str, buttons: list[tuple[str, str, QMessageBox.ButtonRole]], on_answer,
        informative: str = "", details: str = "", icon=QMessageBox.Icon.Question) -> QMessageBox:
    """A window-modal question that never blocks the event loop: on_answer(key) runs when one of
    buttons [(key, label, role)] is chosen, on_answer(None) when the box is closed otherwise.
    The box's `answer_buttons` maps each key to its button (tests click them)."""
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.NoButton, parent)
    if informative:
        box.setInformativeText(informative)
    if details:
        box.setDetailedText(details)
    box.answer_buttons = {}
    for key, label, role in buttons:
        button = box.addButton(label, role)
        box.answer_buttons[key] = button
        if role == QMessageBox.ButtonRole.RejectRole:
            box.setEscapeButton(button)
    if buttons:
        box.setDefaultButton(box.answer_buttons[buttons[0][0]])
    def done(_result):
        clicked = box.clickedButton()
        on_answer(next((key for key, button in box.answer_buttons.items() if clicked is not None and button is clicked), None))

    box.finished.connect(done)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


_pixmaps: dict[tuple[str, int], QPixmap] = {}


def file_pixmap(path: str | Path, size: int) -> QPixmap | None:
    """A cached, scaled thumbnail from disk (None when there is none)."""
    key = (str(path), size)
    if key not in _pixmaps:
        image = QImage(str(path))
        if image.isNull():
            return None
        _pixmaps[key] = QPixmap.fromImage(image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))
    return _pixmaps[key]


def forget_pixmap(path: str | Path) -> None:
    """Drop a file's cached pixmaps (at every size), so a changed photo is read again."""
    for key in [k for k in _pixmaps if k[0] == str(path)]:
        del _pixmaps[key]


def jpeg_pixmap(data: bytes, size: int) -> QPixmap:
    """JPEG bytes scaled to fit a size×size square; an empty pixmap when they do not decode."""
    image = QImage.fromData(data)
    if image.isNull():
        return QPixmap()
    return QPixmap.fromImage(image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))


def drop_zone(text: str, button_text: str) -> tuple[QFrame, QLabel, QPushButton]:
    """A sunken panel with a wrapping hint and, beside it, the button that does the same as a drop."""
    panel = QFrame()
    panel.setFrameShape(QFrame.Shape.StyledPanel)
    panel.setFrameShadow(QFrame.Shadow.Sunken)
    layout = QHBoxLayout(panel)
    label = QLabel(text)
    label.setWordWrap(True)
    button = QPushButton(button_text)
    layout.addWidget(label, 1)
    layout.addWidget(button)
    return panel, label, button


def screen_title(text: str):
    """A screen's heading: larger and bold, relative to the system font (scales with the display)."""
    from PySide6.QtWidgets import QLabel

    label = QLabel(text)
    label.setObjectName("screenTitle")
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 1.5)
    font.setBold(True)
    label.setFont(font)
    return label


def icon_size(widget: QWidget, lines: float = 3.0) -> int:
    """Thumbnail sizes follow the font (and so the display scaling), never a fixed pixel count."""
    return max(24, int(widget.fontMetrics().height() * lines))


def format_eta(seconds: float | None) -> str:
    """Time left as the progress line shows it ("about 2 min 05 s left")."""
    if seconds is None:
        return "estimating time left…"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"about {seconds} s left"
    return f"about {seconds // 60} min {seconds % 60:02d} s left"
