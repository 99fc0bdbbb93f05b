"""The main window: a sidebar of screens, drag and drop, the tray icon, a clean shutdown."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QStyle,
    QSystemTrayIcon,
    QToolButton,
    QWidget,
)

from p2p_attendance.gui.classes import ClassesController
from p2p_attendance.gui.common import app_settings, ask
from p2p_attendance.gui.peers import PeersController
from p2p_attendance.gui.review import ReviewController
from p2p_attendance.gui.share import ShareController
from p2p_attendance.gui.take import TakeController, is_video

SCREENS = ("take", "review", "classes", "share", "peers")


class MainWindow(QMainWindow):
    """The app's window: the screens' controllers, the sidebar, drops, the tray icon and the job advert."""

    closed = Signal()
    advert_ready = Signal(str)  # this copy's instance name, from the advertiser's thread
    advert_failed = Signal(str)  # details, from the advertiser's thread

    def __init__(self, discovery: bool = True, discovery_interfaces=None, tray: bool = True, offer_resume: bool = True):
        super().__init__()
        self.setWindowTitle("P2P Attendance")
        self.settings = app_settings()
        self.setAcceptDrops(True)
        style = self.style()
        self.setWindowIcon(app_icon() or style.standardIcon(QStyle.StandardPixmap.SP_ComputerIcon))

        self.take = TakeController(parent=self)
        self.review = ReviewController(parent=self)
        self.classes = ClassesController(parent=self)
        self.share = ShareController(parent=self, discovery_interfaces=discovery_interfaces, use_discovery=discovery)
        self.peers = PeersController(parent=self, interfaces=discovery_interfaces, enabled=discovery)

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.stack = QStackedWidget()
        icons = {
            "take": QStyle.StandardPixmap.SP_MediaPlay,
            "review": QStyle.StandardPixmap.SP_FileDialogDetailedView,
            "classes": QStyle.StandardPixmap.SP_DirHomeIcon,
            "share": QStyle.StandardPixmap.SP_ComputerIcon,
            "peers": QStyle.StandardPixmap.SP_DriveNetIcon,
        }
        labels = {"take": "Take attendance", "review": "Review && report", "classes": "Classes", "share": "Share my CPU", "peers": "Peers"}
        views = {"take": self.take.view, "review": self.review.view, "classes": self.classes.view, "share": self.share.view, "peers": self.peers.view}
        for number, name in enumerate(SCREENS, start=1):
            item = QListWidgetItem(style.standardIcon(icons[name]), labels[name].replace("&&", "&"))
            item.setToolTip(f"Ctrl+{number}")
            self.sidebar.addItem(item)
            self.stack.addWidget(views[name])
            action = QAction(self)
            action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            action.triggered.connect(lambda _=False, name=name: self.show_screen(name))
            self.addAction(action)
        self.sidebar.setIconSize(QSize(self.fontMetrics().height() * 2, self.fontMetrics().height() * 2))
        self.sidebar.setFixedWidth(max(self.sidebar.sizeHintForColumn(0) + 4 * self.fontMetrics().height(), 12 * self.fontMetrics().height()))
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.sidebar.setCurrentRow(0)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Ready.")
        self.setTabOrder(self.sidebar, self.stack)

        # -- Help → Show log (also a button in the status bar) -----------------------------------
        self.log_viewer = None
        self.show_log_action = QAction("Show &log", self)
        self.show_log_action.setShortcut(QKeySequence("Ctrl+L"))
        self.show_log_action.setStatusTip("This session's log: helpers joining and leaving, warnings, errors.")
        self.show_log_action.triggered.connect(self.show_log)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.show_log_action)
        help_menu.addAction("Open the log &folder", self.open_log_folder)
        self.log_button = QToolButton()
        self.log_button.setDefaultAction(self.show_log_action)
        self.log_button.setText("Show log")
        self.log_button.setToolTip("Show this session's log (Ctrl+L)")
        self.log_button.setAutoRaise(True)
        self.statusBar().addPermanentWidget(self.log_button)

        # -- resuming interrupted runs -----------------------------------------------------------
        self.resume_offer = None  # the open "Continue it?" question, if any
        self._resume_pending = offer_resume  # asked once, after the window first shows
        self._runs_to_offer: list = []

        self.take.job_finished.connect(self._job_finished)
        self.take.review_requested.connect(lambda: self.show_screen("review"))
        self.take.export_requested.connect(self.review.export)
        self.take.running_changed.connect(lambda running: self.statusBar().showMessage("Taking attendance…" if running else "Ready."))
        self.take.warning_raised.connect(lambda text: self.statusBar().showMessage(f"⚠ {text}", 20_000))
        self.classes.classes_changed.connect(lambda name: self.take.refresh_classes())
        self.share.sharing_changed.connect(self._sharing_changed)

        self.advertiser = None
        self._advertised_state: dict = {"state": "idle"}
        if discovery:
            self._start_advertising(discovery_interfaces)
        self.take.runner_created.connect(self._job_created)

        self.tray = None
        self._quitting = False
        self.unsaved_answered = False  # Save or Discard chosen (tests and the screenshot tour set it): closes without asking
        self.unsaved_question = None  # the open "Save the report?" question, if any
        self.take.job_failed.connect(lambda message: self.notify("Attendance failed", message))
        self._closing_after_job = False
        if tray and QSystemTrayIcon.isSystemTrayAvailable():
            self._make_tray()
        self.share.view.tray_hint.setText(
            "Sharing goes on when this window is closed: the icon in the system tray turns it off."
            if self.tray
            else "Sharing stops when this window is closed."
        )
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1200, 820)
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if screen is not None and (self.width() > screen.width() or self.height() > screen.height()):
            self.resize(min(self.width(), screen.width()), min(self.height(), screen.height()))  # a laptop's 1366×768

    # -- discovery: this copy of the app on the LAN -----------------------------------------------
    def _start_advertising(self, interfaces) -> None:
        import traceback

        from p2p_attendance.discovery import BackgroundAdvertiser, default_name
        from p2p_attendance.host import logical_cores

        # The advert starts on its own thread (zeroconf probes the name for ~2 s); its
        # callbacks come back to this thread through the two signals.
        self.advert_ready.connect(self._advertising)
        self.advert_failed.connect(self.peers.view.status.setToolTip)
        self.advertiser = BackgroundAdvertiser(
            default_name(),
            logical_cores(),
            interfaces,
            on_ready=self.advert_ready.emit,
            on_error=lambda exc: self.advert_failed.emit("".join(traceback.format_exception(exc))),
        )

    def _advertising(self, instance: str) -> None:
        self.peers.own_instance = instance

    def _advertise(self, **fields) -> None:
        self._advertised_state = fields
        if self.advertiser is None:
            return
        fields = {"port": None, "job_id": None, "server_key": None, "class_name": "", **fields}
        try:
            self.advertiser.update(**fields)
        except (TypeError, ValueError):
            pass

    def _job_created(self, job) -> None:
        self._advertise(**job.advert_fields())

    # -- interrupted runs ------------------------------------------------------------------------
    def showEvent(self, event):
        super().showEvent(event)
        if self._resume_pending:
            self._resume_pending = False
            QTimer.singleShot(0, self.offer_resume)  # once the window is up: never delays showing it

    def offer_resume(self) -> None:
        """Offer to continue the runs that were interrupted (a crash, a closed window), newest first."""
        from p2p_attendance.checkpoint import last_written, unfinished_runs

        if self.take.is_running():
            return
        try:
            runs = unfinished_runs()
        except OSError:
            return
        self._runs_to_offer = sorted(runs, key=lambda run: last_written(run.path), reverse=True)
        self._offer_next_run()

    def _offer_next_run(self) -> None:
        self.resume_offer = None
        if not self._runs_to_offer or self.take.is_running():
            return
        run = self._runs_to_offer.pop(0)
        video = Path(run.video)
        frames = f"{run.frames_done} frame{'s' if run.frames_done != 1 else ''}"
        text = f"An attendance run of <b>{video.name}</b> for <b>{run.class_name}</b> was interrupted after {frames}. Continue it?"
        buttons = [("continue", "&Continue", QMessageBox.ButtonRole.AcceptRole)]
        informative = "Continue looks only at the frames still missing. Discard deletes the saved progress."
        if not video.is_file():
            buttons = []
            text = f"An attendance run of <b>{video.name}</b> for <b>{run.class_name}</b> was interrupted after {frames}."
            informative = f"The video is no longer at {video}, so the run cannot be continued. Discard deletes the saved progress."
        buttons += [("later", "&Later", QMessageBox.ButtonRole.RejectRole), ("discard", "&Discard", QMessageBox.ButtonRole.DestructiveRole)]
        self.resume_offer = ask(self, "Continue the interrupted run?", text, buttons, lambda key: self._resume_answer(run, key), informative=informative)
        self.resume_offer.run = run

    def _resume_answer(self, run, key) -> None:
        self.resume_offer = None
        if key == "continue":
            self._runs_to_offer.clear()
            self.continue_run(run)
        elif key == "discard":
            from p2p_attendance.checkpoint import remove_checkpoint

            remove_checkpoint(run.path)
            self.statusBar().showMessage(f"Discarded the saved progress of {Path(run.video).name} for {run.class_name}.", 10_000)
            QTimer.singleShot(0, self._offer_next_run)
        else:  # Later: ask again next time the app starts
            self._runs_to_offer.clear()

    def continue_run(self, run) -> bool:
        """Select the run's video and class on Take attendance and continue it with its settings."""
        from p2p_attendance.checkpoint import saved_settings
        from p2p_attendance.gui.common import show_error

        take = self.take
        self.show_screen("take")
        take.set_video(run.video)
        take.refresh_classes(select=run.class_name)
        if take.view.class_combo.currentData() != run.class_name:
            show_error(self, f"The class '{run.class_name}' no longer exists, so the interrupted run cannot be continued.")
            return False
        saved = saved_settings(run.path)  # the run's own settings, so that its saved frames fit
        if "sample_fps" in saved:
            take.view.sample_fps.setValue(saved["sample_fps"])
        if "tolerance" in saved:
            take.view.tolerance.setValue(saved["tolerance"])
        return take.start(resume=True)

    # -- logs ------------------------------------------------------------------------------------
    def show_log(self):
        from p2p_attendance.gui.logview import LogViewer

        if self.log_viewer is None:
            self.log_viewer = LogViewer(self)
        else:
            self.log_viewer.reload()
        self.log_viewer.show()
        self.log_viewer.raise_()
        self.log_viewer.activateWindow()
        return self.log_viewer

    def open_log_folder(self) -> None:
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        from p2p_attendance import paths

        QDesktopServices.openUrl(QUrl.fromLocalFile(str(paths.log_dir())))

    # -- navigation ------------------------------------------------------------------------------
    def show_screen(self, name: str) -> None:
        self.sidebar.setCurrentRow(SCREENS.index(name))

    def screen_widget(self, name: str) -> QWidget:
        return self.stack.widget(SCREENS.index(name))

    def _job_finished(self, report, job) -> None:
        from p2p_attendance.gui.models import present_so_far_text

        self._advertise(state="sharing" if self.share.is_sharing() else "idle")
        self.review.load(report, job)
        if job is not None and job.finished:
            self.notify(f"Attendance of {report.job.class_name} is ready", f"{present_so_far_text(report.students, live=False)}. Review it, then export.")
        else:
            self.notify(f"Attendance of {report.job.class_name} stopped early", "The report covers only the frames looked at.")
        if self._closing_after_job:
            self.unsaved_answered = True  # the teacher chose to stop and close; the history keeps the partial report
            QTimer.singleShot(0, self.close)
            return
        if job is not None and job.finished:
            self.show_screen("review")  # the report opens in the app

    # -- drag and drop ---------------------------------------------------------------------------
    def _dropped_paths(self, event) -> list[str]:
        mime = event.mimeData()
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []

    def dragEnterEvent(self, event):
        paths = self._dropped_paths(event)
        if paths and (is_video(paths[0]) or Path(paths[0]).is_dir()):
            event.acceptProposedAction()

    def dropEvent(self, event):
        paths = self._dropped_paths(event)
        if not paths:
            return
        path = paths[0]
        if Path(path).is_dir():
            self.show_screen("classes")
            if self.classes.roster is None:
                self.classes.new_class(Path(path).name)
            self.classes.enroll(path)
        elif is_video(path):
            self.take.set_video(path)
            self.show_screen("take")
        event.acceptProposedAction()

    # -- tray ------------------------------------------------------------------------------------
    def _make_tray(self) -> None:
        self.tray = QSystemTrayIcon(self.windowIcon(), self)
        menu = QMenu(self)
        self.tray_share = menu.addAction("&Share my CPU")
        self.tray_share.setCheckable(True)
        self.tray_share.toggled.connect(self.share.set_sharing)
        menu.addAction("&Open P2P Attendance", self._show_from_tray)
        menu.addSeparator()
        menu.addAction("&Quit", self.quit)
        self.tray.setContextMenu(menu)
        self.tray.setToolTip("P2P Attendance")
        self.tray.activated.connect(lambda reason: self._show_from_tray() if reason == QSystemTrayIcon.ActivationReason.Trigger else None)
        self.tray.show()

    def _show_from_tray(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def show_from_elsewhere(self) -> None:
        """A second launch of the app: this window comes to the front instead (hidden in the tray too)."""
        self.setWindowState((self.windowState() & ~Qt.WindowState.WindowMinimized) | Qt.WindowState.WindowActive)  # keeps maximized
        self.show()
        self.raise_()
        self.activateWindow()

    def _sharing_changed(self, on: bool) -> None:
        if not self.take.is_running():
            self._advertise(state="sharing" if on else "idle")
        if self.tray is not None:
            self.tray_share.blockSignals(True)
            self.tray_share.setChecked(on)
            self.tray_share.blockSignals(False)
            self.tray.setToolTip("P2P Attendance: sharing this computer's CPU" if on else "P2P Attendance")

    def notify(self, title: str, text: str) -> None:
        """A desktop notification (through the tray icon), for a teacher working in another window."""
        if self.tray is not None and QSystemTrayIcon.supportsMessages():
            self.tray.showMessage(title, text, self.windowIcon(), 10_000)

    # -- closing ---------------------------------------------------------------------------------
    def confirm(self, title: str, text: str) -> bool:
        """Asks the teacher; tests replace it."""
        return QMessageBox.question(self, title, text) == QMessageBox.StandardButton.Yes

    def _ask_to_save(self) -> None:
        """Save / Discard / Cancel before a report that was never exported (or was edited since) goes."""
        from p2p_attendance.gui.common import ask

        self.show_screen("review")
        job = self.review.base_report.job

        def answer(key):
            self.unsaved_question = None
            if key == "save" and self.review.export("xlsx") is None:
                return  # the save dialog was cancelled or failed: stay open
            if key in ("save", "discard"):
                self.unsaved_answered = True
                self.close()

        self.unsaved_question = ask(
            self,
            "Save the attendance report?",
            f"The report of <b>{job.class_name}</b> ({job.started_at[:16].replace('T', ' ')}) has not been exported"
            + (" since you changed it." if self.review.last_export is not None else "."),
            [
                ("save", "&Save…", QMessageBox.ButtonRole.AcceptRole),
                ("discard", "&Discard", QMessageBox.ButtonRole.DestructiveRole),
                ("cancel", "Cancel", QMessageBox.ButtonRole.RejectRole),
            ],
            answer,
            informative="The app keeps it under Review → Report either way; Discard only skips exporting it now.",
            icon=QMessageBox.Icon.Warning,
        )

    def quit(self) -> None:
        self._quitting = True
        self.close()

    def closeEvent(self, event):
        if self.take.is_running():
            if not self._closing_after_job:
                if not self.confirm("Stop taking attendance?", "Attendance is still being taken. Stop the job and close?"):
                    event.ignore()
                    return
                self._closing_after_job = True
                self.take.stop()
                self.statusBar().showMessage("Stopping the job, then closing…")
            event.ignore()  # closes for real when the job thread has said goodbye
            return
        if self.share.is_sharing() and self.tray is not None and not self._quitting:
            self.hide()
            self.tray.showMessage("P2P Attendance", "Still sharing this computer's CPU. Use this icon to stop or quit.")
            event.ignore()
            return
        if self.review.needs_saving() and not self.unsaved_answered:
            event.ignore()
            self._quitting = False
            if self.unsaved_question is None:
                self._ask_to_save()
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.review.flush_history()  # the report's last change is on disk before the app goes
        self.share.set_sharing(False)
        self.share.shutdown()
        self.peers.close()
        if self.advertiser is not None:
            self.advertiser.close()  # goodbye packets: the others drop us at once
            self.advertiser = None
        if self.tray is not None:
            self.tray.hide()
        event.accept()
        self.closed.emit()
        if self.tray is not None:  # the app stayed up for the tray: now it may go
            QTimer.singleShot(0, QApplication.instance().quit)


def app_icon():
    """The app's own icon (resources/icon.png), or None when it is missing."""
    from PySide6.QtGui import QIcon

    from p2p_attendance.paths import resources_dir

    path = resources_dir() / "icon.png"
    icon = QIcon(str(path)) if path.is_file() else None
    return icon if icon is not None and not icon.isNull() else None
