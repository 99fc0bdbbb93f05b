"""Peers: every copy of the app that discovery (mDNS) sees on this network, live."""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QLabel, QTableView, QVBoxLayout, QWidget

from p2p_attendance.gui.common import Task, screen_title
from p2p_attendance.gui.models import discovery_model, sorted_view
from p2p_attendance.gui.take import _style_table


class PeersView(QWidget):
    """The "Computers on this network" screen's layout: a status line and the table."""

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        title = screen_title("Computers on this network")
        outer.addWidget(title)
        self.status = QLabel("Looking for other copies of P2P Attendance…")
        self.status.setWordWrap(True)
        outer.addWidget(self.status)
        self.table = QTableView()
        outer.addWidget(self.table, 1)


class PeersController(QObject):
    """Fills the peers table from mDNS discovery, polled once a second, with this copy's own row marked."""

    POLL_MS = 1000

    def __init__(self, view: PeersView | None = None, parent=None, interfaces=None, enabled: bool = True):
        super().__init__(parent)
        self.view = view or PeersView()
        self.interfaces = interfaces
        self.directory = None
        self.own_instance = None
        self.model = discovery_model(self, lambda p: p.instance == self.own_instance)
        sorted_view(self.view.table, self.model)
        _style_table(self.view.table, 0)
        self.timer = QTimer(self)
        self.timer.setInterval(self.POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._task = None
        self._closed = False
        if enabled:
            self.start()
        else:
            self.view.status.setText("Looking for other computers is turned off.")

    def start(self) -> None:
        from p2p_attendance.discovery import PeerDirectory

        # Opening zeroconf's sockets may take a moment: not on the GUI thread.
        self._task = Task(lambda: PeerDirectory(interfaces=self.interfaces), message="Looking for other computers on this network is not possible here.")
        self._task.done.connect(self._started)
        self._task.failed.connect(self._failed)
        self._task.start()

    def _started(self, directory) -> None:
        self._task = None
        if self._closed:
            directory.close()
            return
        self.directory = directory
        self.timer.start()
        self.poll()

    def _failed(self, message: str, details: str) -> None:
        self._task = None
        last = details.strip().splitlines()[-1] if details.strip() else ""
        self.view.status.setText(f"{message} ({last})")

    def poll(self) -> None:
        if self.directory is None:
            return
        for kind, peer in self.directory.poll():
            if kind == "removed":
                self.model.remove(peer.instance)
            else:
                self.model.upsert(peer.instance, peer)
        count = sum(1 for p in self.model.objects() if p.instance != self.own_instance)
        self.view.status.setText(
            f"{count} other cop{'y' if count == 1 else 'ies'} of P2P Attendance seen on this network (updated every second)."
            if count
            else "No other copies of P2P Attendance seen on this network yet. They appear here as soon as they start."
        )

    def close(self) -> None:
        self._closed = True
        self.timer.stop()
        if self.directory is not None:
            directory, self.directory = self.directory, None
            directory.close()
