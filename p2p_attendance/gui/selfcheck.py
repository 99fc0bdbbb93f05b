"""The GUI's part of --self-test: Qt starts (offscreen), loads the icon, shows a widget."""
from __future__ import annotations

import os


def qt_selfcheck(icon_path: str) -> str:
    """Check offscreen that Qt, its image plugins and the GUI modules load and show a widget; returns the PySide6 version and platform."""
    previous = os.environ.get("QT_QPA_PLATFORM")
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    try:
        from PySide6 import __version__ as pyside_version
        from PySide6.QtGui import QIcon
        from PySide6.QtWidgets import QApplication, QLabel

        import p2p_attendance.gui.app  # noqa: F401  (the desktop app's modules are in this copy)

        app = QApplication.instance() or QApplication(["p2p-attendance-selftest"])
        if QIcon(icon_path).isNull():
            raise RuntimeError(f"Qt cannot load {icon_path} (image format plugins missing?)")
        label = QLabel("self-test")
        label.show()
        app.processEvents()
        label.close()
        return f"PySide6 {pyside_version}, platform {app.platformName()}"
    finally:
        if previous is None:
            os.environ.pop("QT_QPA_PLATFORM", None)
        else:
            os.environ["QT_QPA_PLATFORM"] = previous
