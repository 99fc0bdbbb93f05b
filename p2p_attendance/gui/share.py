"""Share my CPU: one toggle that runs a SharingService on a worker thread (also from the tray).

Before joining a job found on the network it asks, showing the teacher's computer name, the class
and the key fingerprint to compare with the teacher's screen. Everything a requester supplied is
shown as plain text (a class name is not HTML)."""
from __future__ import annotations

import threading
import time

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from p2p_attendance.gui.common import app_settings, screen_title, setting, show_error
from p2p_attendance.host import default_volunteer_cores, logical_cores, on_battery, volunteer_name
from p2p_attendance.lab_defaults import volunteer_defaults


class ShareView(QWidget):
    """The "Share my CPU" screen's layout: the on/off switch, join code, cores, power and status."""

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        title = screen_title("Share my CPU")
        outer.addWidget(title)
        intro = QLabel(
            "Lend this computer's processor to a teacher's attendance job on this network. "
            "Only face measurements of the lecture video are computed here; nothing is stored."
        )
        intro.setWordWrap(True)
        outer.addWidget(intro)

        self.toggle = QCheckBox("&Share this computer's processor")
        font = self.toggle.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.toggle.setFont(font)
        outer.addWidget(self.toggle)

        box = QGroupBox("Settings")
        form = QFormLayout(box)
        self.join_code = QLineEdit()
        self.join_code.setPlaceholderText("the 6 digits on the teacher's screen")
        self.join_code.setMaxLength(32)
        self.connect_line = QLineEdit()
        self.connect_line.setPlaceholderText("optional: tcp://host:port/KEY when the teacher's computer is not found by itself")
        cores_row = QHBoxLayout()
        self.cores = QSlider(Qt.Orientation.Horizontal)
        self.cores.setRange(1, logical_cores())
        self.cores.setPageStep(1)
        self.cores.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.cores_label = QLabel()
        cores_row.addWidget(self.cores, 1)
        cores_row.addWidget(self.cores_label)
        self.plugged_only = QCheckBox("Only when plugged &in (pause on battery)")
        form.addRow("&Join code:", self.join_code)
        form.addRow("&Connect line:", self.connect_line)
        form.addRow("C&ores to share:", cores_row)
        form.addRow("", self.plugged_only)
        cores_label = form.labelForField(cores_row)
        if cores_label is not None:
            cores_label.setBuddy(self.cores)
        outer.addWidget(box)

        status_box = QGroupBox("Doing now")
        status_layout = QVBoxLayout(status_box)
        self.state = QLabel("Not sharing.")
        state_font = self.state.font()
        state_font.setBold(True)
        self.state.setFont(state_font)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.job_info = QLabel("")  # whose job: teacher's computer, class, key fingerprint
        self.job_info.setWordWrap(True)
        self.job_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for label in (self.state, self.detail, self.job_info):  # they show text a requester sent
            label.setTextFormat(Qt.TextFormat.PlainText)
        status_layout.addWidget(self.state)
        status_layout.addWidget(self.job_info)
        status_layout.addWidget(self.detail)
        outer.addWidget(status_box)
        self.tray_hint = QLabel("")
        self.tray_hint.setWordWrap(True)
        outer.addWidget(self.tray_hint)
        outer.addStretch(1)


ASK_TIMEOUT_S = 300.0  # no answer by then: the job is asked about again on the next search


def job_description(peer) -> str:
    """Who is asking for our processor, as plain text (PeerInfo from an mDNS advert, checked
    by the peer-text rule there)."""
    from p2p_attendance.errors import KeyError_
    from p2p_attendance.swarm.security import key_fingerprint, parse_server_key

    try:
        fingerprint = key_fingerprint(parse_server_key(peer.server_key or ""))
    except KeyError_:
        fingerprint = "?"
    return f"Teacher's computer: {peer.name}\nClass: {peer.class_name or '(not given)'}\nKey fingerprint: {fingerprint}"


class ShareController(QObject):
    """Drives CPU sharing: runs the volunteer service on its own thread, finds jobs, pauses on battery."""

    status = Signal(object)  # VolunteerStatus, emitted on the sharing thread, delivered on the GUI's
    sharing_changed = Signal(bool)
    ask_join = Signal(object)  # a job found on the network: {"peer", "answer"}, from the sharing thread
    finder_hint = Signal(str)  # the job finder's word (no job seen, a job of another version), from the sharing thread

    def __init__(self, view: ShareView | None = None, parent=None, discovery_interfaces=None, use_discovery: bool = True):
        super().__init__(parent)
        self.view = view or ShareView()
        self.settings = app_settings()
        self.discovery_interfaces = discovery_interfaces
        self.use_discovery = use_discovery
        self.thread: threading.Thread | None = None
        self.stop_event: threading.Event | None = None
        self.service = None
        self.finder = None
        self.paused = False
        self.last_status = None
        v = self.view
        lab = volunteer_defaults()  # the lab admin's defaults file; this user's own settings win
        v.join_code.setText(setting(self.settings, "share/join_code", lab.join_code))
        v.connect_line.setText(setting(self.settings, "share/connect_line", lab.connect))
        v.cores.setValue(setting(self.settings, "share/cores", lab.cores or default_volunteer_cores(), int))
        v.plugged_only.setChecked(setting(self.settings, "share/plugged_only", True, bool))
        self._cores_changed(v.cores.value())
        v.cores.valueChanged.connect(self._cores_changed)
        v.plugged_only.toggled.connect(lambda on: self.settings.setValue("share/plugged_only", on))
        v.toggle.toggled.connect(self._toggled)
        v.join_code.editingFinished.connect(self._code_edited)
        self.status.connect(self._show_status)
        self.finder_hint.connect(self.view.job_info.setText)
        self.ask_join.connect(self._ask_join)
        self.join_box = None  # the open "join this job?" question, if any
        self.battery_timer = QTimer(self)
        self.battery_timer.setInterval(15_000)
        self.battery_timer.timeout.connect(self.check_power)
        self.watch = QTimer(self)  # notices the service ending by itself (rejected, ...)
        self.watch.setInterval(500)
        self.watch.timeout.connect(self._check_thread)

    def _cores_changed(self, value: int) -> None:
        total = logical_cores()
        self.view.cores_label.setText(f"{value} of {total}")
        self.settings.setValue("share/cores", value)

    # -- toggle ----------------------------------------------------------------------------------
    def set_sharing(self, on: bool) -> None:
        self.view.toggle.setChecked(on)

    def is_sharing(self) -> bool:
        return self.view.toggle.isChecked()

    def _toggled(self, on: bool) -> None:
        if on:
            self.paused = self.view.plugged_only.isChecked() and on_battery()
            if not self._start():
                self.view.toggle.blockSignals(True)
                self.view.toggle.setChecked(False)
                self.view.toggle.blockSignals(False)
                return
            self.battery_timer.start()
        else:
            self.battery_timer.stop()
            self.paused = False
            self._stop()
        self._enable_fields(not on)
        self.sharing_changed.emit(self.is_sharing())

    def _enable_fields(self, enabled: bool) -> None:
        for widget in (self.view.join_code, self.view.connect_line, self.view.cores):
            widget.setEnabled(enabled)

    def _start(self) -> bool:
        from p2p_attendance.errors import KeyError_
        from p2p_attendance.swarm.jobfinder import LanJobFinder
        from p2p_attendance.swarm.security import key_fingerprint, split_connect
        from p2p_attendance.swarm.sharing import SharingService
        from p2p_attendance.swarm.volunteer import JobTarget

        v = self.view
        code = v.join_code.text().strip()
        line = v.connect_line.text().strip()
        target, finder = None, None
        if line:
            try:
                endpoint, key = split_connect(line)
            except KeyError_ as exc:
                show_error(v, "The connect line is not right: copy the whole line from the teacher's screen (tcp://…/…).", str(exc))
                return False
            if key is None:
                show_error(v, "The connect line misses the teacher's key: copy the whole line, including the part after the last '/'.")
                return False
            target = JobTarget(endpoint, key, code)
            v.job_info.setText(f"Key fingerprint: {key_fingerprint(key)} (from the connect line)")
        elif self.use_discovery:
            finder = self.finder = LanJobFinder(self.discovery_interfaces, code, confirm_job=self._confirm_job, on_hint=self.finder_hint.emit)
            v.job_info.setText("")
        else:
            show_error(v, "Type the connect line shown on the teacher's screen.")
            return False
        if not code and target is None:
            show_error(v, "Type the join code shown on the teacher's screen first.")
            return False
        self.settings.setValue("share/join_code", code)
        self.settings.setValue("share/connect_line", line)
        if self.paused:
            self.view.state.setText("Paused: this computer runs on battery.")
            return True
        self.stop_event = threading.Event()
        self.service = SharingService(
            cores=v.cores.value(), name=volunteer_name(), join_code=code, target=target, find_jobs=finder, on_status=self.status.emit,
            wait_for_new_code=True,  # refused: the student corrects the code without switching sharing off
        )
        self.thread = threading.Thread(target=self._run, args=(self.service, self.stop_event, finder), name="share-my-cpu", daemon=True)
        self.thread.start()
        self.watch.start()
        v.state.setText("Starting…" if target else "Looking for a teacher's job on this network…")
        v.detail.setText("")
        return True

    def _code_edited(self) -> None:
        """A code corrected while sharing (the field is editable again after a refusal): the next
        attempt uses it. Enter or leaving the field applies it, not each keystroke (each try of a
        half-typed code would spend one of the class's guesses)."""
        code = self.view.join_code.text().strip()
        service = self.service
        if not (self.is_sharing() and service is not None and self.is_running()) or not code or code == service.join_code:
            return
        self.settings.setValue("share/join_code", code)
        service.set_join_code(code)
        self.view.state.setText("Trying the corrected code…")
        self.view.detail.setText("")

    def _confirm_job(self, peer) -> bool | None:
        """On the sharing thread: ask the student (on the GUI thread) before joining a job found
        on the network; True/False, or None without an answer (stopped, or nobody there)."""
        answer = {"event": threading.Event(), "join": None}
        stop = self.stop_event
        self.ask_join.emit({"peer": peer, "answer": answer})
        deadline = time.monotonic() + ASK_TIMEOUT_S
        while not answer["event"].wait(0.2):
            if (stop is not None and stop.is_set()) or time.monotonic() > deadline:
                return None
        return answer["join"]

    def _ask_join(self, request) -> None:
        """On the GUI thread: a non-modal question, answered through its finished signal."""
        peer, answer = request["peer"], request["answer"]
        text = job_description(peer)
        box = QMessageBox(QMessageBox.Icon.Question, "Join this attendance job?", "", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.view)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setText(f"A teacher's job was found on this network.\n\n{text}\n\nCompare the key fingerprint with the teacher's screen. Join this job?")
        box.setDefaultButton(QMessageBox.StandardButton.No)

        def finished(_result) -> None:
            join = box.standardButton(box.clickedButton()) == QMessageBox.StandardButton.Yes
            if join:
                self.view.job_info.setText(text)
            answer["join"] = join
            answer["event"].set()
            self.join_box = None

        box.finished.connect(finished)
        self.join_box = box
        box.open()

    def _run(self, service, stop, finder) -> None:
        try:
            service.run(stop)
        except Exception as exc:  # noqa: BLE001
            from p2p_attendance.swarm.volunteer import VolunteerStatus

            self.status.emit(VolunteerStatus(state="error", message=str(exc)))
        finally:
            if finder is not None:
                finder.close()

    def _stop(self) -> None:
        if self.stop_event is not None:
            self.stop_event.set()
        self.view.state.setText("Stopping…")

    def _check_thread(self) -> None:
        if self.thread is not None and not self.thread.is_alive():
            self.watch.stop()
            self.thread = None
            outcome = self.service.outcomes[-1] if self.service and self.service.outcomes else None
            if self.is_sharing() and not self.paused:
                # It ended by itself: a fixed requester said no, or its job is over.
                self.view.toggle.blockSignals(True)
                self.view.toggle.setChecked(False)
                self.view.toggle.blockSignals(False)
                self._enable_fields(True)
                self.battery_timer.stop()
                self.sharing_changed.emit(False)
                message = self.service.last_message if self.service else ""
                self.view.state.setText("Not sharing.")
                if outcome is not None and outcome.value == "rejected":
                    self.view.detail.setText(f"The teacher's computer said no: {message}. Check the join code.")
                else:
                    self.view.detail.setText(f"The job ended{': ' + message if message else ''}.")
            elif not self.paused:
                self.view.state.setText("Not sharing.")

    def is_running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop sharing and wait (bounded) for the thread: used when the app quits."""
        if self.stop_event is not None:
            self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)

    # -- power -----------------------------------------------------------------------------------
    def check_power(self) -> None:
        if not self.is_sharing():
            return
        battery = on_battery() and self.view.plugged_only.isChecked()
        if battery and not self.paused:
            self.paused = True
            self._stop()
            self.view.state.setText("Paused: this computer runs on battery.")
        elif not battery and self.paused:
            self.paused = False
            if self.thread is None or not self.thread.is_alive():
                self._start()

    # -- status ----------------------------------------------------------------------------------
    def _show_status(self, status) -> None:
        self.last_status = status
        v = self.view
        if self.paused:
            return
        if status.refusal and self.is_sharing():
            from p2p_attendance.swarm.sharing import refusal_words

            v.state.setText("The teacher's computer did not let this computer in.")
            v.detail.setText(refusal_words(status.refusal, status.retry_after_s))
            v.join_code.setEnabled(True)  # correct it here; Enter applies it to the next try
            return
        if status.state in ("joining", "working") and self.is_sharing():
            v.join_code.setEnabled(False)
        if status.state == "working":
            v.state.setText(f"Working: {status.frames_done} frames done")
            v.detail.setText(f"Job {status.job_id} at {status.endpoint}")
        elif status.state == "joining":
            v.state.setText("Joining the teacher's job…")
            v.detail.setText(status.endpoint)
        elif status.state == "reconnecting":
            v.state.setText("The teacher's computer is not answering; trying again…")
            v.detail.setText(status.message)
        elif status.state == "error":
            v.state.setText("Sharing stopped because of an error.")
            v.detail.setText(status.message)
        else:
            v.state.setText("Waiting for a job…" if self.is_sharing() and status.message != "not sharing" else "Not sharing.")
            v.detail.setText(status.message if status.message != "not sharing" else "")
