"""The requester's checkpoint: every frame result, stored once its batch is settled, so a crash, a closed
window or a sleeping laptop never costs the teacher the work already done.

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
    """One job's results saved as they arrive (SQLite, 0600), so an interrupted run can continue."""

    def __init__(self, path: Path, identity: JobIdentity, resume: bool, label: dict | None = None):
        """Open for a job. resume=False starts afresh (an old checkpoint is discarded);
        resume=True keeps the stored results, if they belong to this very job."""
        self.path = path
        private_dir(path.parent)
        if not resume:
            remove_checkpoint(path)
        # It holds unknown people's encodings: 0600 before SQLite opens it (SQLite makes the -wal
        # and -shm files with the database's mode; old ones are tightened).
        private_file(path)
        for suffix in COMPANIONS:
            tighten(f"{path}{suffix}")
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # a crash of the app loses nothing committed
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS frames (idx INTEGER PRIMARY KEY, time_s REAL NOT NULL, faces TEXT NOT NULL, encodings BLOB NOT NULL)")
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
            matrix = np.frombuffer(blob, np.float32).reshape(-1, 128)
            encodings = tuple(None if face.student_id else matrix[i].copy() for i, face in enumerate(faces))
            results[index] = FrameResult(index, time_s, faces, encodings)
        return results

    def add(self, results: list[FrameResult]) -> None:
        rows = []
        for result in results:
            faces = [{"box": list(f.box), "student_id": f.student_id, "distance": f.distance, "score": f.score} for f in result.faces]
            matrix = np.array([e if e is not None else np.zeros(128, np.float32) for e in result.encodings], np.float32).reshape(-1, 128)
            rows.append((result.index, result.time_s, json.dumps(faces), matrix.tobytes()))
        with self.db:  # one transaction per batch: all of it or none of it
            self.db.executemany("INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?)", rows)

    def discard(self, indexes: list[int]) -> None:
        with self.db:
            self.db.executemany("DELETE FROM frames WHERE idx = ?", [(i,) for i in indexes])

    def close(self, delete: bool = False) -> None:
        self.db.close()
        if delete:
            remove_checkpoint(self.path)


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
