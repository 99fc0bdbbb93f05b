"""Help → Show log: this session's log file (peer events, warnings, errors) in a read-only viewer,
one click from the teacher's text editor or the log folder."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QFontDatabase, QTextCursor
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout

MAX_SHOWN_BYTES = 2 * 1024 * 1024  # the end of a long log is what matters


def read_tail(path: Path, limit: int = MAX_SHOWN_BYTES) -> str:
    """The end of a log file (at most `limit` bytes) as text; when cut, from a whole line on, with a note of what was left out."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - limit))
        data = handle.read()
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        text = f"[… the first {size - limit} bytes are left out: open the file to see them …]\n" + text.split("\n", 1)[-1]
    return text


class LogViewer(QDialog):
    """Shows the newest log file; Reload reads it again (the job keeps writing to it)."""

    def __init__(self, parent=None):
        from p2p_attendance import paths

        super().__init__(parent)
        self.setWindowTitle("Log of P2P Attendance")
        self.path: Path | None = None
        self.folder = paths.log_dir()
        layout = QVBoxLayout(self)
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        layout.addWidget(self.where)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout.addWidget(self.text, 1)
        row = QHBoxLayout()
        self.reload_button = QPushButton("&Reload")
        self.open_button = QPushButton("Open in a text &editor")
        self.folder_button = QPushButton("Open the log &folder")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        row.addWidget(self.reload_button)
        row.addWidget(self.open_button)
        row.addWidget(self.folder_button)
        row.addStretch(1)
        row.addWidget(buttons)
        layout.addLayout(row)
        self.reload_button.clicked.connect(self.reload)
        self.open_button.clicked.connect(lambda: self.path and self.open_url(QUrl.fromLocalFile(str(self.path))))
        self.folder_button.clicked.connect(lambda: self.open_url(QUrl.fromLocalFile(str(self.folder))))
        buttons.rejected.connect(self.close)
        metrics = self.text.fontMetrics()
        self.resize(120 * metrics.averageCharWidth(), 32 * metrics.height())
        self.reload()

    def open_url(self, url: QUrl) -> bool:
        """The desktop's own application for the file (tests replace it)."""
        return QDesktopServices.openUrl(url)

    def reload(self) -> None:
        from p2p_attendance.logs import latest_log

        self.path = latest_log()
        self.open_button.setEnabled(self.path is not None)
        if self.path is None:
            self.where.setText(f"No log has been written yet. Logs are kept in {self.folder}")
            self.text.setPlainText("")
            return
        try:
            content = read_tail(self.path)
        except OSError as exc:
            content = f"The log cannot be read: {exc}"
        self.where.setText(f"This session's log: {self.path}")
        self.text.setPlainText(content)
        self.text.moveCursor(QTextCursor.MoveOperation.End)
        self.text.ensureCursorVisible()
