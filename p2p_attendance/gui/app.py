"""Entry point of the desktop app: `p2p-attendance gui` (and the --screenshot tour)."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

SCREENSHOT_TIMEOUT_S = 180.0


def make_app():
    """The QApplication (the existing one, if any), named and given the app's icon."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("P2P Attendance")
    app.setOrganizationName("p2p-attendance")
    app.setApplicationDisplayName("P2P Attendance")
    app.setDesktopFileName("p2p-attendance")  # Wayland shells take the icon from the desktop entry of this name
    from p2p_attendance.gui.window import app_icon

    icon = app_icon()
    if icon is not None:
        app.setWindowIcon(icon)  # dialogs and the log viewer too
    return app


def run_gui(args) -> int:
    """Open the main window (one copy per user) and run Qt's event loop until the app quits."""
    from p2p_attendance.discovery import resolve_interfaces
    from p2p_attendance.gui.window import MainWindow

    app = make_app()
    screenshot = bool(getattr(args, "screenshot", None))
    instance = None
    if not screenshot:  # the screenshot tour is a test: it may run beside the teacher's copy
        from p2p_attendance.gui.instance import SingleInstance, ask_running_copy_to_show

        if ask_running_copy_to_show():
            print("P2P Attendance is already open: its window was brought to the front.", file=sys.stderr)
            return 0
        try:
            instance = SingleInstance(parent=app)
        except OSError as exc:
            log.warning("no single-instance guard: %s", exc)
    try:
        interfaces = resolve_interfaces(None)
    except ValueError as exc:
        print(f"warning: {exc}; looking for other computers on all networks", file=sys.stderr)
        interfaces = None
    window = MainWindow(discovery_interfaces=interfaces, tray=not screenshot, offer_resume=not screenshot)
    if window.tray is not None:
        app.setQuitOnLastWindowClosed(False)  # sharing goes on from the tray
    if instance is not None:
        instance.show_requested.connect(window.show_from_elsewhere)
    if getattr(args, "video", None):
        window.take.set_video(args.video)
    if getattr(args, "screenshot", None):
        window.resize(1280, 900)
        window.show()
        tour = ScreenshotTour(window, args)
        tour.start()
        app.exec()
        return tour.exit_code
    if getattr(args, "class_name", None):
        window.take.refresh_classes(select=args.class_name)
    if getattr(args, "roster", None):
        window.show_screen("classes")
        window.classes.enroll(args.roster, args.class_name or Path(args.roster).resolve().name)
    window.show()
    return app.exec()


class ScreenshotTour:
    """Loads the given job, runs it, and saves a PNG of every screen: docs and a smoke test."""

    def __init__(self, window, args, timeout_s: float = SCREENSHOT_TIMEOUT_S):
        from PySide6.QtCore import QTimer

        self.window = window
        self.args = args
        self.folder = Path(args.screenshot)
        self.deadline = time.monotonic() + timeout_s
        self.exit_code = 1
        self.step = "enroll"
        self.saved: list[Path] = []
        self.timer = QTimer()
        self.timer.setInterval(200)
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # made private if new; the user's own folder is left as it is
        args, window = self.args, self.window
        if not args.video or not (args.class_name or args.roster):
            self.fail("--screenshot needs --video and --class or --roster")
            return
        if args.roster:
            name = args.class_name or Path(args.roster).resolve().name
            window.show_screen("classes")
            task = window.classes.enroll(args.roster, name)
            if task is None:
                self.fail("enrolling could not start")
                return
            task.failed.connect(lambda message, details: self.fail(f"enrolling failed: {message}\n{details}"))
            self.class_name = name
        else:
            self.class_name = args.class_name
        self.timer.start()

    def fail(self, message: str) -> None:
        print(f"screenshot: {message}", file=sys.stderr)
        self.exit_code = 1
        self.finish()

    def finish(self) -> None:
        from PySide6.QtWidgets import QApplication

        self.timer.stop()
        window = self.window
        window.take.stop()
        if window.take.runner is not None and window.take.runner.thread is not None:
            window.take.runner.thread.join(20)
        window.confirm = lambda *_: True
        window.unsaved_answered = True  # the tour's report is a demo: no Save question
        window.close()  # stops sharing, discovery and the advertiser
        QApplication.instance().exit(self.exit_code)

    def grab(self, name: str, screen: str) -> None:
        from PySide6.QtWidgets import QApplication

        self.window.show_screen(screen)
        for _ in range(5):
            QApplication.processEvents()
        from p2p_attendance.fileio import write_private

        path = self.folder / f"{name}.png"
        image = self.window.grab()

        def save(tmp: Path) -> None:  # the screens show students' names and faces: 0600 (fileio)
            if not image.save(str(tmp), "PNG"):
                raise OSError(f"could not write {path}")

        write_private(path, save)
        self.saved.append(path)

    def tick(self) -> None:
        try:
            self._tick()
        except Exception as exc:  # noqa: BLE001
            log.exception("screenshot tour failed")
            self.fail(f"{type(exc).__name__}: {exc}")

    def _tick(self) -> None:
        window = self.window
        take = window.take
        if time.monotonic() > self.deadline:
            self.fail(f"timed out in step '{self.step}'")
            return
        if self.step == "enroll":
            if window.classes.task is not None:
                return
            take.refresh_classes(select=self.class_name)
            window.show_screen("take")
            if take.view.class_combo.currentData() != self.class_name:
                self.fail(f"no class named {self.class_name!r}")
                return
            if not take.start(resume=False):  # a fresh run, whatever was saved before
                self.fail("the job did not start")
                return
            self.step = "live"
        elif self.step in ("live", "finish") and not take.is_running() and take.report is None:
            self.fail(f"the job failed: {window.take.last_error}")
        elif self.step == "live":
            if take.peer_model.rowCount() and take.frames and take._tallied > 0:
                self.grab("take-attendance-live", "take")
                self.step = "finish"
            elif take.report is not None:  # a short video on fast peers ends before the live tally shows
                print("screenshot: the job ended before the live tables filled; no live screenshot", file=sys.stderr)
                self.step = "finish"
        elif self.step == "finish":
            if take.is_running() or take.report is None:
                return
            if take.runner.job is None or not take.runner.job.finished:
                self.fail("the job did not finish")
                return
            self.step = "unknowns"
            self.unknowns_wait = time.monotonic() + 10
        elif self.step == "unknowns":
            # the unknown-face strips are grouped off the GUI thread: give them a moment
            if (not window.review.unknown_groups or take._cluster_task is not None) and time.monotonic() < self.unknowns_wait:
                return
            self.grab("take-attendance", "take")
            review = window.review
            # the first row in the shown order with crops: a close call when there is one (sorted first)
            rows = (review.sorted.source_row(v) for v in range(review.sorted.rowCount()))
            row = next((i for i in rows if review.evidence.of_student(review.model.key_at(i))), 0)
            review.view.table.selectRow(max(0, review.sorted.view_row(row)))
            self.grab("review", "review")
            window.classes.refresh(select=self.class_name)
            self.grab("classes", "classes")
            self.grab("share", "share")
            self.step = "peers"
            self.peers_wait = time.monotonic() + 10
        elif self.step == "peers":
            # discovery needs a moment to hear this copy's own announcement
            wanted = window._advertised_state.get("state")
            settled = any(p.instance == window.peers.own_instance and p.state == wanted for p in window.peers.model.objects())
            if not settled and window.peers.directory is not None and time.monotonic() < self.peers_wait:
                return
            self.grab("peers", "peers")
            for path in self.saved:
                print(f"saved {path}", file=sys.stderr)
            self.exit_code = 0
            self.finish()
