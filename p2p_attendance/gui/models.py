"""Table models for the live tables. Rows are keyed and updated in place (dataChanged for the
row that changed, beginInsertRows for a new one), never rebuilt, so selection and scrolling
survive the once-a-second updates."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt

from p2p_attendance.attendance.model import PRESENT
from p2p_attendance.attendance.tally import margin
from p2p_attendance.gui.common import ABSENT_TINT, PRESENT_TINT, WARNING_TINT, file_pixmap
from p2p_attendance.report.writers import format_time
from p2p_attendance.swarm.peers import PeerState


@dataclass
class Column:
    """One table column: its title and how a row object gives its text, icon, tint, tooltip and sort key."""

    title: str
    text: Callable[[object], object]
    align_right: bool = False
    decoration: Callable[[object], object] | None = None
    background: Callable[[object], object] | None = None
    tooltip: Callable[[object], object] | None = None
    sort_key: Callable[[object], object] | None = None
    editable: bool = False


class KeyedTableModel(QAbstractTableModel):
    """A table model whose rows are objects kept by key, updated one row at a time (upsert, remove, sync)."""

    def __init__(self, columns: list[Column], parent=None):
        super().__init__(parent)
        self.columns = columns
        self._keys: list[str] = []
        self._rows: dict[str, object] = {}
        self.on_edit: Callable[[object, int, str], bool] | None = None

    # -- Qt ------------------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._keys)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].title
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        obj = self._rows[self._keys[index.row()]]
        column = self.columns[index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            value = column.text(obj)
            return "" if value is None else value
        if role == Qt.ItemDataRole.DecorationRole and column.decoration:
            return column.decoration(obj)
        if role == Qt.ItemDataRole.BackgroundRole and column.background:
            return column.background(obj)
        if role == Qt.ItemDataRole.ToolTipRole and column.tooltip:
            return column.tooltip(obj)
        if role == Qt.ItemDataRole.TextAlignmentRole and column.align_right:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return column.sort_key(obj) if column.sort_key else column.text(obj)
        return None

    def flags(self, index):
        flags = super().flags(index)
        if index.isValid() and self.columns[index.column()].editable:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole):
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or self.on_edit is None:
            return False
        obj = self._rows[self._keys[index.row()]]
        if self.on_edit(obj, index.column(), str(value)):
            self.dataChanged.emit(self.index(index.row(), 0), self.index(index.row(), self.columnCount() - 1))
            return True
        return False

    # -- updates -------------------------------------------------------------------------------
    def upsert(self, key: str, obj: object) -> None:
        if key in self._rows:
            old = self._rows[key]
            self._rows[key] = obj
            if old != obj:
                row = self._keys.index(key)
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))
            return
        row = len(self._keys)
        self.beginInsertRows(QModelIndex(), row, row)
        self._keys.append(key)
        self._rows[key] = obj
        self.endInsertRows()

    def remove(self, key: str) -> None:
        if key not in self._rows:
            return
        row = self._keys.index(key)
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._keys[row]
        del self._rows[key]
        self.endRemoveRows()

    def sync(self, items: list[tuple[str, object]]) -> None:
        """Make the rows equal to items: update, insert, remove only what differs."""
        wanted = {key for key, _ in items}
        for key in [k for k in self._keys if k not in wanted]:
            self.remove(key)
        for key, obj in items:
            self.upsert(key, obj)

    def clear(self) -> None:
        if not self._keys:
            return
        self.beginResetModel()
        self._keys.clear()
        self._rows.clear()
        self.endResetModel()

    def key_at(self, row: int) -> str | None:
        return self._keys[row] if 0 <= row < len(self._keys) else None

    def object_at(self, row: int):
        key = self.key_at(row)
        return None if key is None else self._rows[key]

    def get(self, key: str):
        return self._rows.get(key)

    def row_of(self, key: str) -> int:
        return self._keys.index(key) if key in self._rows else -1

    def objects(self) -> list:
        return [self._rows[k] for k in self._keys]


class SortedView(QSortFilterProxyModel):
    """Sorting for a KeyedTableModel (by each column's sort key, so "10 %" sorts after "9 %"), and
    the attendance tables' "who needs a look first" order: absent and not-yet-seen students,
    then the least sure of the present ones (lowest presence), then the rest."""

    def __init__(self, source: KeyedTableModel, parent=None):
        super().__init__(parent)
        self.setSourceModel(source)
        self.setSortRole(Qt.ItemDataRole.UserRole)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setDynamicSortFilter(True)  # the live rows move as their verdicts change
        self.needs_a_look_first = False

    def set_needs_a_look_first(self, on: bool) -> None:
        self.needs_a_look_first = on
        self.invalidate()
        if on:
            self.sort(0, Qt.SortOrder.AscendingOrder)  # column 0 sorts by needs_a_look_key below

    def lessThan(self, left, right):
        source = self.sourceModel()
        if self.needs_a_look_first:
            a, b = source.object_at(left.row()), source.object_at(right.row())
            if isinstance(a, AttendanceRow) and isinstance(b, AttendanceRow):
                return needs_a_look_key(a) < needs_a_look_key(b)
        a, b = left.data(self.sortRole()), right.data(self.sortRole())
        try:
            return (a is None, a) < (b is None, b)
        except TypeError:
            return str(a) < str(b)

    def source_row(self, view_row: int) -> int:
        """The KeyedTableModel row shown at view_row (-1 for none)."""
        index = self.mapToSource(self.index(view_row, 0))
        return index.row() if index.isValid() else -1

    def view_row(self, source_row: int) -> int:
        index = self.mapFromSource(self.sourceModel().index(source_row, 0))
        return index.row() if index.isValid() else -1


def needs_a_look_key(row: "AttendanceRow") -> tuple:
    """Those that need a look first (close calls, nearest the threshold first; then absent students
    an unsure face may be), then absent, then the least sure present."""
    closeness = abs(row.margin) if row.close and row.margin is not None else 0.0
    return (not row.close_call, not row.close, closeness, row.status == PRESENT, row.presence, row.name.casefold())


def sorted_view(table, model: KeyedTableModel) -> SortedView:
    """Show model in table through a SortedView: a click on a header sorts, the rows start in
    the model's own order."""
    proxy = SortedView(model, table)
    table.setModel(proxy)
    table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
    table.setSortingEnabled(True)
    return proxy


def _status_tint(status: str):
    return PRESENT_TINT if status == PRESENT else ABSENT_TINT


PEER_STATES = {
    PeerState.JOINED.value: "joined",
    PeerState.WORKING.value: "working",
    PeerState.LEFT.value: "left",
    PeerState.LOST.value: "lost (no answer)",
    PeerState.QUARANTINED.value: "quarantined — results rejected",
    PeerState.DONE.value: "finished",
}
QUARANTINE_TIP = "Caught lying ({why}): all its results were thrown away and its work is being redone by others."


def peer_state_text(p: dict) -> str:
    """A peer snapshot's state in words for the table."""
    return PEER_STATES.get(p["state"], p["state"])


def peer_model(parent=None) -> KeyedTableModel:
    """Rows: the requester's peer snapshots (dicts). A quarantined helper's row is tinted amber
    (translucent, so it reads on light and dark palettes) and says why in a tooltip."""

    def tint(p):
        return WARNING_TINT if p["state"] == PeerState.QUARANTINED else None

    def tip(p):
        return QUARANTINE_TIP.format(why=p.get("why") or "its results were wrong") if p["state"] == PeerState.QUARANTINED else None

    return KeyedTableModel(
        [
            Column("Helper", lambda p: ("⚠ " if p["state"] == PeerState.QUARANTINED else "") + p["name"], background=tint, tooltip=tip),
            Column("Address", lambda p: p["address"], background=tint, tooltip=tip),
            Column("Cores", lambda p: p["cores"], align_right=True, background=tint, tooltip=tip),
            Column("State", peer_state_text, background=tint, tooltip=tip),
            Column("Frames done", lambda p: p["frames"], align_right=True, background=tint, tooltip=tip),
            Column("Frames/s", lambda p: f"{p['frames_per_s']:.1f}", align_right=True, background=tint, tooltip=tip),
            Column("Last heard", lambda p: f"{p['last_heard_s']:.0f} s ago", align_right=True, background=tint, tooltip=tip),
        ],
        parent,
    )


@dataclass(frozen=True)
class AttendanceRow:
    """One student's line in the attendance table (a StudentAttendance plus display hints)."""

    id: str
    name: str
    status: str
    presence: float
    first_seen_s: float | None
    last_seen_s: float | None
    frames_seen: int
    manual: bool
    thumbnail: str
    live: bool  # the job is still running: verdicts are "so far"
    close_call: str = ""  # what needs a look (attendance/tally.py: margin): "close: 42 % of 50 %", "Unsure 1 may be them"
    margin: float | None = None  # presence - threshold, when the threshold is known
    close: bool = False  # presence near the threshold
    look_alikes: tuple[str, ...] = ()  # unsure groups that look like this absent student

    @classmethod
    def of(cls, student, thumbnail: str, live: bool, threshold: float | None = None, unknown_faces=()) -> "AttendanceRow":
        """unknown_faces: the report's, for the unsure groups that may be an absent student."""
        m = margin(student, threshold, unknown_faces=unknown_faces) if threshold is not None else None
        return cls(student.id, student.name, student.status, student.presence, student.first_seen_s, student.last_seen_s, student.frames_seen,
                   student.manual, thumbnail, live, m.text() if m else "", m.presence - m.threshold if m else None,
                   m.close if m else False, m.look_alikes if m else ())


def present_so_far_text(students, live: bool) -> str:
    """The attendance count in words: "N of M present" ("… so far" while the job runs)."""
    present = sum(1 for s in students if s.status == PRESENT)
    return f"{present} of {len(students)} present" + (" so far" if live else "")


def status_text(row: AttendanceRow) -> str:
    """A student's status in words: present or absent, "so far" while live, "(set by you)" when overridden."""
    text = "Present" if row.status == PRESENT else "Absent"
    if row.live:
        text = f"{text} so far" if row.frames_seen or row.status == PRESENT else "Not seen yet"
    if row.manual:
        text += " (set by you)"
    return text


def _margin_tooltip(row: AttendanceRow) -> str | None:
    tips = []
    if row.close:
        tips.append("Close to the threshold: a window or two more or fewer would change the verdict. Check the faces.")
    if row.look_alikes:
        tips.append("A face the app was not sure enough to name looks like this student: see it under the faces not on the class list.")
    return " ".join(tips) or None


def attendance_model(parent=None, thumb_size: Callable[[], int] = lambda: 48, margins: bool = False) -> KeyedTableModel:
    """margins: a "Margin" column that flags close calls (the review; rows made with a threshold)."""
    columns = [
        Column("Photo", lambda r: None, decoration=lambda r: file_pixmap(r.thumbnail, thumb_size())),
        Column("Student", lambda r: r.name, tooltip=lambda r: f"ID {r.id}"),
        Column("Status", status_text, background=lambda r: _status_tint(r.status), sort_key=lambda r: r.status),
        Column("Presence", lambda r: f"{round(r.presence * 100)} %", align_right=True, sort_key=lambda r: r.presence),
        Column("First seen", lambda r: format_time(r.first_seen_s), align_right=True, sort_key=lambda r: r.first_seen_s or 0.0),
        Column("Last seen", lambda r: format_time(r.last_seen_s), align_right=True, sort_key=lambda r: r.last_seen_s or 0.0),
    ]
    if margins:
        columns.append(
            Column("Margin", lambda r: r.close_call, background=lambda r: WARNING_TINT if r.close_call else None,
                   tooltip=_margin_tooltip,
                   sort_key=lambda r: abs(r.margin) if r.margin is not None else float("inf"))
        )
    return KeyedTableModel(columns, parent)


def discovery_model(parent=None, is_self=lambda peer: False) -> KeyedTableModel:
    """Rows: discovery PeerInfo objects."""
    states = {"idle": "idle", "sharing": "sharing its CPU", "requesting": "taking attendance"}
    return KeyedTableModel(
        [
            Column("Computer", lambda p: p.name + (" (this computer)" if is_self(p) else "")),
            Column("Doing", lambda p: states.get(p.state, p.state)),
            Column("Cores", lambda p: p.cores, align_right=True),
            Column("Address", lambda p: ", ".join(p.addresses)),
            Column("Job", lambda p: (p.job_id or "") + (" (open to all)" if p.open_job else "")),
            Column("App version", lambda p: p.app_version),
        ],
        parent,
    )


class WarningsModel(QAbstractListModel):
    """The job's warnings, one row per distinct text with a count: "laptop-3 (10.0.0.7) tried a
    wrong join code ×214". A repeat updates its row in O(1) (a dict from text to row), so a storm
    of wrong codes costs the GUI the same per warning at the 5,000th as at the first. Rows are
    capped: a LAN with thousands of addresses cannot grow the list without bound; warnings past
    the cap are counted on one last row (the run log has each of them)."""

    MAX_ROWS = 200

    def __init__(self, parent=None):
        super().__init__(parent)
        self._texts: list[str] = []
        self._counts: list[int] = []
        self._first: list[str] = []  # when each was first raised (HH:MM:SS)
        self._row_of: dict[str, int] = {}
        self.overflow = 0  # warnings not listed because the list is full

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._texts) + (1 if self.overflow else 0)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = index.row()
        if row == len(self._texts):  # the overflow row
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
                return f"⚠ {self.overflow} more warning{'s' if self.overflow != 1 else ''} not listed: see the log"
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return f"⚠ {self._first[row]}  {self.row_text(row)}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.row_text(row)
        if role == Qt.ItemDataRole.UserRole:
            return self._texts[row]
        return None

    def row_text(self, row: int) -> str:
        count = self._counts[row]
        return self._texts[row] + (f" ×{count}" if count > 1 else "")

    def add(self, text: str, when: str) -> bool:
        """Count one warning; True when it made a new row."""
        row = self._row_of.get(text)
        if row is not None:
            self._counts[row] += 1
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole])
            return False
        if len(self._texts) >= self.MAX_ROWS:
            self.overflow += 1
            row = len(self._texts)
            if self.overflow == 1:
                self.beginInsertRows(QModelIndex(), row, row)
                self.endInsertRows()
            else:
                self.dataChanged.emit(self.index(row), self.index(row))
            return False
        row = len(self._texts)
        self.beginInsertRows(QModelIndex(), row, row)
        self._texts.append(text)
        self._counts.append(1)
        self._first.append(when)
        self._row_of[text] = row
        self.endInsertRows()
        return True

    def has(self, text: str) -> bool:
        return text in self._row_of

    def total(self) -> int:
        return sum(self._counts) + self.overflow

    def texts(self) -> list[str]:
        return list(self._texts)

    def rows(self) -> list[tuple[str, int]]:
        return list(zip(self._texts, self._counts))

    def clear(self) -> None:
        self.beginResetModel()
        self._texts, self._counts, self._first, self._row_of = [], [], [], {}
        self.overflow = 0
        self.endResetModel()
