"""Never lose the teacher's work: kill -9 mid-job, resume, same report; changed inputs refused."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from p2p_attendance.attendance.model import FrameResult
from p2p_attendance.checkpoint import Checkpoint, CheckpointMismatch, JobIdentity, checkpoint_path, unfinished_runs
from p2p_attendance.roster.enroll import enroll_folder

APP = [sys.executable, "-m", "p2p_attendance"]


def checkpoint_rows(path):
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_9_then_resume_processes_only_what_is_missing(demo_material, engine, tmp_path):
    enroll_folder(demo_material.photos_dir, "Demo class", lambda: engine)
    video = str(demo_material.video)
    common = ["run", video, "--class", "Demo class", "--workers", "1", "--sample-fps", "4", "--no-discovery"]
    crashed = subprocess.Popen([*APP, *common], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    path = checkpoint_path(video, "Demo class")
    deadline = time.monotonic() + 120
    while checkpoint_rows(path) < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(crashed.pid, signal.SIGKILL)  # the requester and its workers, no goodbye
    crashed.wait(10)
    saved = checkpoint_rows(path)
    assert 20 <= saved < 80
    (unfinished,) = unfinished_runs()  # what the GUI offers to resume at start
    assert (unfinished.video, unfinished.class_name, unfinished.frames_done) == (os.path.abspath(video), "Demo class", saved)

    resumed = subprocess.run([*APP, *common, "--resume", "--json", str(tmp_path / "resumed.json")], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming: {saved} frames already done" in resumed.stderr
    full = subprocess.run([*APP, *common, "--json", str(tmp_path / "full.json")], capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr

    a, b = (json.loads((tmp_path / name).read_text()) for name in ("resumed.json", "full.json"))
    assert a["job"]["frames_from_checkpoint"] == saved and b["job"]["frames_from_checkpoint"] == 0
    assert a["job"]["frames_processed"] == b["job"]["frames_processed"] == b["job"]["frames_total"]
    assert sum(p["frames"] for p in a["job"]["peers"]) == b["job"]["frames_total"] - saved  # only the missing ones
    assert a["students"] == b["students"]
    assert a["unknown_faces"] == b["unknown_faces"]
    assert not path.exists()  # a finished job leaves no checkpoint behind


def test_resuming_with_a_changed_video_or_roster_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    Checkpoint(path, JobIdentity("video-1", "roster-1", "{}"), resume=False).close()
    with pytest.raises(CheckpointMismatch, match="different video fingerprint"):
        Checkpoint(path, JobIdentity("video-2", "roster-1", "{}"), resume=True)
    with pytest.raises(CheckpointMismatch, match="different roster hash"):
        Checkpoint(path, JobIdentity("video-1", "roster-2", "{}"), resume=True)
    Checkpoint(path, JobIdentity("video-1", "roster-1", "{}"), resume=True).close()  # same job: fine


def test_a_changed_setting_is_refused_with_which_setting_and_both_values(tmp_path):
    path = tmp_path / "c.sqlite"
    saved = json.dumps({"sample_fps": 2.0, "tolerance": 0.5, "upsample": 1}, sort_keys=True)
    now = json.dumps({"sample_fps": 2.0, "tolerance": 0.45, "upsample": 1}, sort_keys=True)
    Checkpoint(path, JobIdentity("video-1", "roster-1", saved), resume=False).close()
    with pytest.raises(CheckpointMismatch) as refused:
        Checkpoint(path, JobIdentity("video-1", "roster-1", now), resume=True)
    assert refused.value.changed == ("params",)
    assert refused.value.settings == {"tolerance": (0.5, 0.45)}
    assert "different params" in str(refused.value)  # the CLI's sentence is unchanged
    with pytest.raises(CheckpointMismatch) as refused:
        Checkpoint(path, JobIdentity("video-2", "roster-2", saved), resume=True)
    assert refused.value.changed == ("video_fingerprint", "roster_hash") and refused.value.settings == {}


def test_saved_settings_are_read_from_the_checkpoint_without_changing_it(tmp_path):
    from p2p_attendance.checkpoint import saved_settings

    path = tmp_path / "c.sqlite"
    params = json.dumps({"sample_fps": 2.0, "tolerance": 0.55, "upsample": 1, "name": "x", "flag": True}, sort_keys=True)
    Checkpoint(path, JobIdentity("video-1", "roster-1", params), resume=False).close()
    before = path.read_bytes()
    assert saved_settings(path) == {"sample_fps": 2.0, "tolerance": 0.55, "upsample": 1.0}
    assert path.read_bytes() == before
    assert saved_settings(tmp_path / "missing.sqlite") == {}
    (tmp_path / "junk.sqlite").write_bytes(b"not a database")
    assert saved_settings(tmp_path / "junk.sqlite") == {}


def test_removing_a_checkpoint_takes_its_wal_and_shm_files_with_it(tmp_path):
    from p2p_attendance.checkpoint import last_written, remove_checkpoint

    path = tmp_path / "c.sqlite"
    checkpoint = Checkpoint(path, JobIdentity("video-1", "roster-1", "{}"), resume=False)
    checkpoint.add([FrameResult(0, 0.0, ())])
    assert (tmp_path / "c.sqlite-wal").exists() and (tmp_path / "c.sqlite-shm").exists()  # open, in WAL mode
    assert last_written(path) > 0
    checkpoint.close()
    for companion in ("c.sqlite-wal", "c.sqlite-shm"):  # what a crash leaves next to the database
        (tmp_path / companion).write_bytes(b"")
    (tmp_path / "c.sqlite.bak").write_text("not the checkpoint's")
    remove_checkpoint(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.sqlite.bak"]
    remove_checkpoint(path)  # already gone: fine
    assert last_written(path) == 0.0


def test_the_batches_beside_a_gap_come_back_with_every_faces_descriptor_for_the_seams_there(tmp_path):
    import numpy as np

    from p2p_attendance.attendance.model import Face
    from p2p_attendance.swarm.seams import SavedBatch

    rng = np.random.default_rng(7)
    path = tmp_path / "c.sqlite"
    checkpoint = Checkpoint(path, JobIdentity("video-1", "roster-1", "{}"), resume=False)

    def batch(first, trusted):
        indexes = (first, first + 1)
        encodings = tuple(rng.normal(size=(2, 128)).astype(np.float32) for _ in indexes)
        results = [FrameResult(i, i * 0.5, (Face((0, 0, 9, 9), "ann", 0.3), Face((20, 0, 29, 9), None, 0.7)), (None, e[1])) for i, e in zip(indexes, encodings)]
        checkpoint.add(results, SavedBatch(indexes, tuple([f.box for f in r.faces] for r in results), encodings, trusted))
        return results, encodings

    batch(0, True)
    results, encodings = batch(2, False)
    batch(4, True)
    batch(8, True)  # frames 6-7 missing: a crash before their batch settled
    renamed = results[1]  # a seam's name taken back later (a liar caught): the frame is saved again, alone
    checkpoint.add([FrameResult(3, renamed.time_s, (renamed.faces[0], Face((20, 0, 29, 9), None, 0.7)), (None, encodings[1][1]))])
    assert [b.indexes[0] for b in checkpoint.batches_beside_gaps()] == [4, 8]
    checkpoint.discard([4])  # voided: its batch goes with it, and batch 2 is now beside a gap
    beside = {b.indexes[0]: b for b in checkpoint.batches_beside_gaps()}
    assert sorted(beside) == [2, 8] and beside[2].trusted is False and beside[8].trusted is True
    for got, want in zip(beside[2].encodings, encodings):
        np.testing.assert_array_equal(got, want)  # the named face's descriptor kept through the later save
    assert beside[2].boxes == ([(0, 0, 9, 9), (20, 0, 29, 9)],) * 2
    loaded = checkpoint.load()
    assert loaded[2].encodings[0] is None and loaded[2].encodings[1] is not None  # only unknown faces are grouped
    with checkpoint.db:
        checkpoint.db.execute("INSERT INTO batches VALUES (100, 'not json', 1)")  # a damaged row: of no use, and harmless
    assert sorted(b.indexes[0] for b in checkpoint.batches_beside_gaps()) == [2, 8]
    checkpoint.discard([9])
    assert sorted(first for (first,) in checkpoint.db.execute("SELECT first FROM batches")) == [0, 2]
    checkpoint.close()
