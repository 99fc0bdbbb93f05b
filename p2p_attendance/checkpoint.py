"""The requester's checkpoint: every frame result, stored once its batch is settled, so a crash, a closed
window or a sleeping laptop never costs the teacher the work already done.

Each saved batch keeps every face's descriptor, named faces' too: a batch done again after a
crash beside one already saved gets the seam the interrupted run would have looked at
(swarm/seams.py), so a name that seam takes back does not stand.

SQLite in WAL mode in the user data dir, one file per (video path, class). A transaction per
batch keeps it atomic: after a crash the file holds whole batches only. The video's fingerprint,
the roster's hash and the job parameters are stored with it; resuming with anything changed is
refused rather than mixing results from two different jobs.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from p2p_attendance import paths
from p2p_attendance.attendance.model import Face, FrameResult
from p2p_attendance.errors import CheckpointMismatch
from p2p_attendance.fileio import private_dir, private_file, tighten
from p2p_attendance.swarm.seams import SavedBatch

COMPANIONS = ("-wal", "-shm")  # SQLite's files next to a checkpoint in WAL mode


@dataclass(frozen=True)
class JobIdentity:
    """What makes a checkpoint belong to a job: the video, the roster and the job's parameters."""

    video_fingerprint: str
    roster_hash: str
    params: str  # sample rate, tolerance, detection settings, as canonical JSON

    def as_dict(self) -> dict:
        return {"video_fingerprint": self.video_fingerprint, "roster_hash": self.roster_hash, "params": self.params}


def roster_hash(ids: list[str], encodings: np.ndarray) -> str:
    """A short digest of the roster's ids and encodings: a changed class list refuses an old checkpoint."""
    digest = hashlib.sha256(json.dumps(ids).encode())
    digest.update(np.ascontiguousarray(encodings, np.float32).tobytes())
    return digest.hexdigest()[:32]


def checkpoint_path(video: str, class_name: str, folder: Path | None = None) -> Path:
    """Where the checkpoint of this video and class lives (named by a hash of the two)."""
    key = hashlib.sha256(f"{os.path.abspath(video)}\n{class_name}".encode()).hexdigest()[:20]
    return (folder or paths.checkpoints_dir()) / f"{key}.sqlite"


class Checkpoint:
    """One job's results saved as their batches settle (SQLite, 0600), so an interrupted run can continue."""

    def __init__(self, path: Path, identity: JobIdentity, resume: bool, label: dict | None = None):
        """Open for a job. resume=False starts afresh (an old checkpoint is discarded);
        resume=True keeps the stored results, if they belong to this very job."""
        self.path = path
        private_dir(path.parent)
        if not resume:
            remove_checkpoint(path)
        # It holds face descriptors, students' and unknown people's: 0600 before SQLite opens it
        # (SQLite makes the -wal and -shm files with the database's mode; old ones are tightened).
        private_file(path)
        for suffix in COMPANIONS:
            tighten(f"{path}{suffix}")
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # a crash of the app loses nothing committed
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        # encodings: every face's descriptor (a row of zeros where a named face's is not known)
        self.db.execute("CREATE TABLE IF NOT EXISTS frames (idx INTEGER PRIMARY KEY, time_s REAL NOT NULL, faces TEXT NOT NULL, encodings BLOB NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS batches (first INTEGER PRIMARY KEY, frames TEXT NOT NULL, trusted INTEGER NOT NULL)")
        stored = {k: v for k, v in self.db.execute("SELECT key, value FROM meta") if k in identity.as_dict()}
        wanted = identity.as_dict()
        if stored and stored != wanted:
            changed = tuple(name for name in wanted if stored.get(name) != wanted[name])
            self.db.close()
            raise CheckpointMismatch(changed, _changed_settings(stored.get("params"), wanted["params"]))
        with self.db:  # the label (video path, class) lets the GUI offer to resume at start
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [*wanted.items(), *(label or {}).items()])

    def load(self) -> dict[int, FrameResult]:
        results = {}
        for index, time_s, faces_json, blob in self.db.execute("SELECT idx, time_s, faces, encodings FROM frames"):
            faces = tuple(Face(tuple(f["box"]), f["student_id"], f["distance"], f["score"]) for f in json.loads(faces_json))
            matrix = _descriptors(blob)
            encodings = tuple(None if face.student_id else matrix[i].copy() for i, face in enumerate(faces))
            results[index] = FrameResult(index, time_s, faces, encodings)
        return results

    def add(self, results: list[FrameResult], batch: SavedBatch | None = None) -> None:
        """Store frames (a settled batch's, with its descriptors, or frames whose names changed
        later: a named face's descriptor already stored is kept)."""
        descriptors = dict(zip(batch.indexes, batch.encodings)) if batch is not None else {}
        stored = self._stored_encodings([r.index for r in results if r.index not in descriptors])
        rows = []
        for result in results:
            faces = [{"box": list(f.box), "student_id": f.student_id, "distance": f.distance, "score": f.score} for f in result.faces]
            matrix = np.zeros((len(result.faces), 128), np.float32)
            known = descriptors.get(result.index)
            if known is not None and len(known) == len(result.faces):
                matrix[:] = known
            else:
                old = stored.get(result.index)
                for i, encoding in enumerate(result.encodings):
                    if encoding is not None:
                        matrix[i] = encoding
                    elif old is not None and len(old) == len(result.faces):
                        matrix[i] = old[i]
            rows.append((result.index, result.time_s, json.dumps(faces), matrix.tobytes()))
        with self.db:  # one transaction per batch: all of it or none of it
            self.db.executemany("INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?)", rows)
            if batch is not None:
                self.db.execute("INSERT OR REPLACE INTO batches VALUES (?, ?, ?)", (batch.indexes[0], json.dumps(list(batch.indexes)), int(batch.trusted)))

    def _stored_encodings(self, indexes: list[int]) -> dict[int, np.ndarray]:
        out = {}
        for index in indexes:
            row = self.db.execute("SELECT encodings FROM frames WHERE idx = ?", (index,)).fetchone()
            if row is not None:
                out[index] = _descriptors(row[0])
        return out

    def batches_beside_gaps(self) -> list[SavedBatch]:
        """The saved batches next to a frame not saved: the ones a resumed run's batches can have
        a seam with (a few: the rest is not read). A damaged row is left out: no seam there, as
        with a checkpoint of an older version, which has no batches."""
        saved = {index for (index,) in self.db.execute("SELECT idx FROM frames")}
        out = []
        for frames_json, trusted in self.db.execute("SELECT frames, trusted FROM batches").fetchall():
            indexes = _frames_of(frames_json)
            try:
                batch = self._batch_beside_gap(indexes, bool(trusted), saved) if indexes is not None else None
            except (ValueError, TypeError, KeyError):  # a damaged frame row
                continue
            if batch is not None:
                out.append(batch)
        return out

    def _batch_beside_gap(self, indexes: tuple[int, ...], trusted: bool, saved: set[int]) -> SavedBatch | None:
        if not indexes or not saved.issuperset(indexes):
            return None
        if (indexes[0] == 0 or indexes[0] - 1 in saved) and indexes[-1] + 1 in saved:
            return None  # no gap beside it (the video's last batch is kept: its end is not stored)
        rows = [self.db.execute("SELECT faces, encodings FROM frames WHERE idx = ?", (i,)).fetchone() for i in indexes]
        boxes = tuple([tuple(face["box"]) for face in json.loads(faces)] for faces, _ in rows)
        encodings = tuple(_descriptors(blob).copy() for _, blob in rows)
        if any(len(e) != len(b) for e, b in zip(encodings, boxes)):
            return None  # a damaged row
        return SavedBatch(indexes, boxes, encodings, trusted)

    def discard(self, indexes: list[int]) -> None:
        gone = set(indexes)
        batches = []  # those with a voided frame, and damaged rows (of no use, and maybe a voided one's)
        for first, frames_json in self.db.execute("SELECT first, frames FROM batches").fetchall():
            frames = _frames_of(frames_json)
            if frames is None or gone.intersection(frames):
                batches.append(first)
        with self.db:
            self.db.executemany("DELETE FROM frames WHERE idx = ?", [(i,) for i in indexes])
            self.db.executemany("DELETE FROM batches WHERE first = ?", [(first,) for first in batches])

    def close(self, delete: bool = False) -> None:
        self.db.close()
        if delete:
            remove_checkpoint(self.path)


def _descriptors(blob: bytes) -> np.ndarray:
    """A frame row's face descriptors, (faces, 128) float32, read-only over the row's bytes."""
    return np.frombuffer(blob, np.float32).reshape(-1, 128)


def _frames_of(frames_json: str) -> tuple[int, ...] | None:
    """A batch row's frames, in order; None for a damaged row."""
    try:
        return tuple(int(i) for i in json.loads(frames_json))
    except (ValueError, TypeError):
        return None


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint with SQLite's companion files (a missing one is fine)."""
    for suffix in ("", *COMPANIONS):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def last_written(path: Path) -> float:
    """When a checkpoint last took results (its -wal file is newer than the database); 0 when unknown."""
    try:
        return max(Path(f"{path}{suffix}").stat().st_mtime for suffix in ("", "-wal") if Path(f"{path}{suffix}").exists())
    except (OSError, ValueError):
        return 0.0


def _settings(params: str | None) -> dict:
    try:
        settings = json.loads(params or "{}")
    except ValueError:
        return {}
    return settings if isinstance(settings, dict) else {}


def _changed_settings(saved_params: str | None, params: str) -> dict[str, tuple[object, object]]:
    """{setting: (saved, now)} for each job setting whose value differs."""
    saved, now = _settings(saved_params), _settings(params)
    return {key: (saved.get(key), now.get(key)) for key in sorted(saved.keys() | now.keys()) if saved.get(key) != now.get(key)}


def saved_settings(path: Path) -> dict[str, float]:
    """The numeric settings an interrupted run used, e.g. {'sample_fps': 2.0, 'tolerance': 0.5}
    ({} when unreadable), so that continuing it uses the settings its saved frames were made with."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'params'").fetchone()
    except sqlite3.Error:
        return {}
    settings = _settings(row[0] if row else None)
    return {key: float(value) for key, value in settings.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}


@dataclass(frozen=True)
class UnfinishedRun:
    """A checkpoint left behind by an interrupted run: which video and class, and how far it got."""

    video: str
    class_name: str
    frames_done: int
    path: Path


def saved_frames(video: str, class_name: str, folder: Path | None = None) -> int:
    """Frames an interrupted run of this video and class left behind (0 when none); the CLI and
    the GUI ask before a new run would discard them."""
    path = checkpoint_path(video, class_name, folder)
    if not path.exists():
        return 0
    return next((run.frames_done for run in unfinished_runs(path.parent) if run.path == path), 0)


def unfinished_runs(folder: Path | None = None) -> list[UnfinishedRun]:
    """Checkpoints left by interrupted runs (a finished run deletes its own)."""
    runs = []
    for path in sorted((folder or paths.checkpoints_dir()).glob("*.sqlite")):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                meta = dict(db.execute("SELECT key, value FROM meta"))
                frames = db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        except sqlite3.Error:
            continue
        if frames and "video_path" in meta:
            runs.append(UnfinishedRun(meta["video_path"], meta.get("class_name", ""), frames, path))
    return runs
