"""Everything the teacher's copy writes is its user's alone: folders 0700, files 0600."""
import logging
import os
import stat
from pathlib import Path

import pytest

from p2p_attendance.fileio import private_file, write_private_bytes


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    """The common default: without care, files come out 0644 and folders 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def app_folders() -> list[Path]:
    return [Path(os.environ[var]) / "p2p-attendance" for var in ("XDG_DATA_HOME", "XDG_STATE_HOME")]


def walk(folders):
    for top in folders:
        if not top.exists():
            continue
        yield top
        yield from top.rglob("*")


@pytest.mark.timeout(240)
def test_a_real_job_leaves_no_file_or_folder_others_can_read(demo_material, engine, tmp_path, loose_umask):
    from p2p_attendance import paths
    from p2p_attendance.cli import ProgressPrinter, _finish_job
    from p2p_attendance.job import AttendanceJob, JobOptions
    from p2p_attendance.logs import setup_logging
    from p2p_attendance.roster.enroll import enroll_folder

    identity = paths.data_dir() / "identity"
    identity.mkdir(mode=0o755)
    for name in ("requester.key", "requester.key_secret"):  # left by an older version, unusable
        (identity / name).write_bytes(b"damaged")
        os.chmod(identity / name, 0o644)
    os.chmod(paths.data_dir(), 0o755)  # as an older version made it

    root = logging.getLogger()
    handlers = list(root.handlers)
    run_log = setup_logging(False, run_log="run")
    try:
        roster = enroll_folder(demo_material.photos_dir, "Demo class", lambda: engine).roster
        while_running: dict[str, int] = {}

        def on_event(kind, payload):  # on the job's thread: the checkpoint as it is being written
            if kind == "frame" and not while_running:
                while_running.update({str(p): mode(p) for p in paths.checkpoints_dir().iterdir()})

        options = JobOptions(workers=1, listen="tcp://127.0.0.1:0", discovery=False, sample_fps=1.0)
        job = AttendanceJob(demo_material.video, roster, options, on_event=on_event)
        report = job.run()
        assert job.finished
        logging.getLogger("test").warning("the run log has something in it")
        found = {str(p): mode(p) for p in walk(app_folders())}
        exports = tmp_path / "exports"
        outs = (exports / "a.xlsx", exports / "a.csv", exports / "a.json")
        assert _finish_job(job, report, outs, ProgressPrinter()) == 0
    finally:
        for handler in root.handlers[len(handlers):]:
            root.removeHandler(handler)
            handler.close()

    folders = {p: m for p, m in found.items() if Path(p).is_dir()}
    files = {p: m for p, m in found.items() if not Path(p).is_dir()}
    names = {Path(p).name for p in files}
    assert {"class.json", "requester.key", "requester.key_secret", run_log.name} <= names
    assert any(n.endswith(".jpg") for n in names) and any(n.endswith(".sqlite") for n in names)
    assert any(p.endswith("-wal") for p in while_running), while_running
    print(f"{len(files)} files, {len(folders)} folders; modes: {sorted(set(found.values()))}")
    assert {p: oct(m) for p, m in folders.items() if m != 0o700} == {}
    assert {p: oct(m) for p, m in files.items() if m != 0o600} == {}
    assert {p: oct(m) for p, m in while_running.items() if m != 0o600} == {}
    assert {p.name: oct(mode(p)) for p in outs} == {p.name: oct(0o600) for p in outs}  # they name students
    assert not any(p.endswith(".sqlite") for p in map(str, walk(app_folders())))  # deleted once written


def test_a_key_file_left_0644_ends_0600(tmp_path, loose_umask):
    from p2p_attendance.swarm.security import load_or_create_identity

    public, secret = load_or_create_identity(tmp_path / "identity")
    for name in ("requester.key", "requester.key_secret"):
        os.chmod(tmp_path / "identity" / name, 0o644)
    os.chmod(tmp_path / "identity", 0o755)
    assert load_or_create_identity(tmp_path / "identity") == (public, secret)  # the same key, kept
    assert mode(tmp_path / "identity") == 0o700
    assert {name: oct(mode(tmp_path / "identity" / name)) for name in ("requester.key", "requester.key_secret")} == {
        "requester.key": oct(0o600), "requester.key_secret": oct(0o600)}


def test_writing_over_a_0644_file_gives_0600_and_keeps_content_of_private_file(tmp_path, loose_umask):
    target = tmp_path / "old.bin"
    target.write_bytes(b"old")
    assert mode(target) == 0o644
    write_private_bytes(target, b"new")
    assert mode(target) == 0o600 and target.read_bytes() == b"new"
    log = tmp_path / "run.log"
    log.write_text("kept\n")
    private_file(log)
    assert mode(log) == 0o600 and log.read_text() == "kept\n"


def test_the_gui_settings_file_is_0600_whatever_the_umask(tmp_path, monkeypatch, loose_umask):
    """The settings hold the last connect line and join code: the .ini is 0600 from its first save,
    stays so across saves (QSettings replaces it through QSaveFile), and one left 0644 is tightened."""
    from p2p_attendance.gui.common import SETTINGS_ENV, app_settings

    path = tmp_path / "config" / "p2p.ini"
    monkeypatch.setenv(SETTINGS_ENV, str(path))
    for value in ("111111", "222222"):
        settings = app_settings()
        settings.setValue("share/join_code", value)
        settings.sync()
        assert mode(path) == 0o600 and value in path.read_text()
        del settings
    assert mode(path.parent) == 0o700
    os.chmod(path, 0o644)  # written by an older version
    app_settings()
    assert mode(path) == 0o600 and "222222" in path.read_text()
