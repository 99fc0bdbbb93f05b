"""The bridge between an AttendanceJob (blocking, on its own thread) and the GUI.

The job's on_event callback runs on the job thread; it only emits signals. JobRunner lives on the
GUI thread, so Qt queues every emission onto the GUI thread's event loop.
"""
from __future__ import annotations

import logging
import threading
import traceback

from PySide6.QtCore import QObject, Signal

from p2p_attendance.gui.common import teacher_message

log = logging.getLogger(__name__)


class JobRunner(QObject):
    """Runs one AttendanceJob on its own thread and turns its events into Qt signals."""

    created = Signal(object)  # the AttendanceJob, once the video is open and the socket bound
    progress = Signal(dict)
    frame = Signal(object)  # FrameResult
    peer = Signal(dict)
    peers = Signal(list)
    warning = Signal(str)
    finished = Signal(object)  # AttendanceReport (also after a stop: a partial one)
    failed = Signal(str, str)  # teacher message, details
    mismatch = Signal(object, str)  # resuming refused: the CheckpointMismatch, details

    def __init__(self, video: str, roster, options, parent: QObject | None = None):
        super().__init__(parent)
        self.video, self.roster, self.options = video, roster, options
        self.stop_event = threading.Event()
        self.job = None
        self.report = None
        self.prior_frames: dict = {}  # results taken over from the checkpoint when resuming
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        # Not a daemon: the app waits for the job to say goodbye to its helpers before it exits.
        self.thread = threading.Thread(target=self._run, name="attendance-job", daemon=False)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def is_alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _on_event(self, kind: str, payload) -> None:  # on the job thread
        signal = {"progress": self.progress, "frame": self.frame, "peer": self.peer, "peers": self.peers, "warning": self.warning}.get(kind)
        if signal is not None:
            signal.emit(payload)

    def _run(self) -> None:
        from p2p_attendance.errors import CheckpointMismatch
        from p2p_attendance.job import AttendanceJob

        try:
            job = AttendanceJob(self.video, self.roster, self.options, on_event=self._on_event)
        except CheckpointMismatch as exc:
            log.warning("cannot resume %s for %s: %s", self.video, self.roster.name, exc)
            self.mismatch.emit(exc, traceback.format_exc())
            return
        except Exception as exc:  # noqa: BLE001
            log.exception("the job could not start")
            self.failed.emit(teacher_message(exc, "The job could not start."), traceback.format_exc())
            return
        self.prior_frames = job.prior_frames()
        self.job = job
        self.created.emit(job)
        if self.stop_event.is_set():
            job.close()
            self.finished.emit(job.report())
            return
        try:
            self.report = job.run(self.stop_event)
        except Exception as exc:  # noqa: BLE001
            log.exception("the job stopped because of an error")
            self.failed.emit(teacher_message(exc, "The job stopped because of an error."), traceback.format_exc())
            return
        job.discard_checkpoint()  # the report is built and held by the app; exports are retried there
        self.finished.emit(self.report)
