"""One copy of the app per user: a second launch asks the first to show its window, then exits.

A QLocalServer with a per-user name (a Unix socket only this user may open, a named pipe on
Windows). The second copy connects, says "show", and leaves; a stale socket left by a crash is
removed when nobody answers on it."""
from __future__ import annotations

import getpass
import hashlib

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

CONNECT_TIMEOUT_MS = 500
SHOW = b"show\n"


def server_name(user: str | None = None) -> str:
    """Per user (and per data folder, so that tests and portable installs do not meet)."""
    from p2p_attendance import paths

    user = user or getpass.getuser()
    tag = hashlib.sha256(f"{user}\0{paths.data_dir()}".encode()).hexdigest()[:16]
    return f"p2p-attendance-{tag}"


def ask_running_copy_to_show(name: str | None = None) -> bool:
    """True when another copy answered (and was asked to show its window)."""
    socket = QLocalSocket()
    socket.connectToServer(name or server_name())
    if not socket.waitForConnected(CONNECT_TIMEOUT_MS):
        return False
    socket.write(SHOW)
    socket.flush()
    socket.waitForBytesWritten(CONNECT_TIMEOUT_MS)
    socket.disconnectFromServer()
    return True


class SingleInstance(QObject):
    """Listens for later launches; show_requested fires on the GUI thread for each."""

    show_requested = Signal()

    def __init__(self, name: str | None = None, parent=None):
        super().__init__(parent)
        self.name = name or server_name()
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not self.server.listen(self.name):
            QLocalServer.removeServer(self.name)  # left by a copy that crashed: nobody answered on it
            if not self.server.listen(self.name):
                raise OSError(f"cannot listen on {self.name}: {self.server.errorString()}")
        self._sockets: list[QLocalSocket] = []
        self.server.newConnection.connect(self._connection)

    def _connection(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()  # a child of the server: Qt owns it
            self._sockets.append(socket)
            socket.readyRead.connect(self._read)

    def _read(self) -> None:
        for socket in list(self._sockets):
            if not socket.bytesAvailable():
                continue
            data = bytes(socket.read(64))  # a few bytes at most: anything else is ignored
            self._sockets.remove(socket)
            socket.readyRead.disconnect(self._read)
            socket.abort()
            socket.deleteLater()
            if data.startswith(SHOW.strip()):
                self.show_requested.emit()

    def close(self) -> None:
        self.server.close()
