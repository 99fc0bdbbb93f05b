"""The command line end to end, as a teacher runs it."""
import json
import subprocess
import sys

import openpyxl
import pytest

from conftest import SHARED_FACES, needs_shared_faces

APP = [sys.executable, "-m", "p2p_attendance"]


def run_app(*args, timeout=300):
    return subprocess.run([*APP, *args], capture_output=True, text=True, timeout=timeout)


def test_demo_runs_end_to_end_and_writes_every_report(tmp_path):
    out = run_app("demo", "--dir", str(tmp_path), "--workers", "2", "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"))
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert {s["id"]: s["status"] for s in report["students"]} == {"grace_hopper": "present", "eileen_collins": "present", "ada_lovelace": "absent"}
    assert len(report["unknown_faces"]) == 1  # the stranger, as one person, matched to nobody
    assert report["job"]["frames_processed"] == report["job"]["frames_total"] == 60
    assert [p["name"] for p in report["job"]["peers"]] == ["this computer"]
    late = next(s for s in report["students"] if s["id"] == "eileen_collins")
    assert abs(late["first_seen_s"] - 10) <= 1
    workbook = openpyxl.load_workbook(tmp_path / "demo-attendance.xlsx")
    assert workbook.sheetnames == ["Summary", "Timeline", "Job"]
    assert "Grace Hopper" in out.stdout and "present" in out.stdout  # the table printed at the end
    assert "Join code:" in out.stderr and "frames/s" in out.stderr


def test_unreadable_video_gives_one_clear_message_and_fails(tmp_path):
    bad = tmp_path / "lecture.mp4"
    bad.write_bytes(b"\x00" * 1000)
    out = run_app("run", str(bad), "--roster", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error: Cannot") and "Traceback" not in out.stderr
    missing = run_app("run", str(tmp_path / "nope.mp4"), "--class", "x")
    assert missing.returncode == 1 and "Video not found" in missing.stderr


def test_run_needs_a_class_and_an_unknown_class_is_explained(demo_material):
    assert run_app("run", str(demo_material.video)).returncode == 2
    out = run_app("run", str(demo_material.video), "--class", "Nope")
    assert out.returncode == 1 and "No class named 'Nope'" in out.stderr


def test_volunteer_without_the_key_is_told_what_to_pass():
    out = run_app("volunteer", "--connect", "tcp://127.0.0.1:5555", "--join-code", "1")
    assert out.returncode == 2 and "key is missing" in out.stderr


@needs_shared_faces
@pytest.mark.parametrize("face_width, dim", [(130, False), (55, True)])
def test_shared_faces_class_statuses_and_times(tmp_path, engine, face_width, dim):
    """Arrives late, leaves early, looks down, never comes, a stranger stays: all right, ±3 s."""
    from p2p_attendance.compose import compose_class_video, labelled_class
    from p2p_attendance.demo import lfw_face

    duration = 60.0
    appearances, expected = labelled_class(SHARED_FACES, engine, lfw_face(1), duration)
    video = compose_class_video(tmp_path / "class.mp4", appearances, duration, face_width=face_width, dim=dim)
    out = run_app("run", str(video), "--roster", str(SHARED_FACES / "enroll"), "--workers", "2", "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    got = {s["id"]: s for s in report["students"]}
    assert set(got) == set(expected)
    for sid, want in expected.items():
        assert got[sid]["status"] == want["status"], sid
        if want["first"] is None:
            assert got[sid]["frames_seen"] == 0
        else:
            assert abs(got[sid]["first_seen_s"] - want["first"]) <= 3, sid
            assert abs(got[sid]["last_seen_s"] - want["last"]) <= 3, sid
    assert len(report["unknown_faces"]) == 1


@pytest.mark.timeout(240)
def test_a_report_writer_that_crashes_loses_neither_the_job_nor_the_other_reports(demo_material, engine, tmp_path, capsys):
    """A lone surrogate in a peer's name crashed the JSON writer after the checkpoint was gone."""
    import dataclasses

    from p2p_attendance.attendance.model import PeerWork
    from p2p_attendance.cli import EXIT_FAILED, EXIT_OK, ProgressPrinter, _finish_job
    from p2p_attendance.job import AttendanceJob, JobOptions
    from p2p_attendance.roster.enroll import enroll_folder

    roster = enroll_folder(demo_material.photos_dir, "Demo class", lambda: engine).roster
    job = AttendanceJob(demo_material.video, roster, JobOptions(workers=1, listen="tcp://127.0.0.1:0", discovery=False, sample_fps=1.0))
    report = job.run()
    assert job.finished
    checkpoint = job.checkpoint.path
    assert checkpoint.exists(), "the checkpoint was deleted before any report was written"

    bad = dataclasses.replace(report, job=dataclasses.replace(report.job, peers=[PeerWork("bad\ud800name", 20)]))
    outs = (tmp_path / "r.xlsx", tmp_path / "r.csv", tmp_path / "r.json")
    capsys.readouterr()
    assert _finish_job(job, bad, outs, ProgressPrinter()) == EXIT_FAILED
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    print(err)
    assert len(errors) == 1 and "JSON report" in errors[0] and str(outs[2]) in errors[0] and "--resume" in errors[0]
    assert outs[0].exists() and outs[1].exists() and not outs[2].exists()  # the others were written
    assert checkpoint.exists()  # the job's results are kept until every report is safe

    # As the message says: the same job with --resume writes them all, from the saved results.
    again = AttendanceJob(demo_material.video, roster, JobOptions(workers=1, listen="tcp://127.0.0.1:0", discovery=False, sample_fps=1.0, resume=True))
    report = again.run()
    assert again.finished and report.job.frames_from_checkpoint == report.job.frames_processed == 20
    assert _finish_job(again, report, outs, ProgressPrinter()) == EXIT_OK
    assert json.loads(outs[2].read_text())["job"]["frames_processed"] == 20
    assert not checkpoint.exists()


def test_a_wrong_code_storm_prints_a_few_lines_per_source_not_thousands():
    import io

    from p2p_attendance.cli import ProgressPrinter

    stream = io.StringIO()
    printer = ProgressPrinter(stream)
    for i in range(5_000):
        printer("warning", f"laptop-{i % 50} (10.0.{i % 50}.7) tried a wrong join code")
    lines = stream.getvalue().splitlines()
    print(f"5,000 wrong codes from 50 sources: {len(lines)} lines on the terminal")
    assert len(lines) == 50 * 3  # the 1st, 10th and 100th of each
    assert "warning (×100 so far): laptop-7 (10.0.7.7) tried a wrong join code" in lines
    assert "laptop-7 (10.0.7.7) tried a wrong join code (×100 in all)" in printer.warning_summary()

    for i in range(1_000):  # every guess from another address: the distinct texts are capped
        printer("warning", f"laptop (10.1.{i // 250}.{i % 250}) tried a wrong join code")
    assert len(stream.getvalue().splitlines()) <= 150 + ProgressPrinter.MAX_WARNING_TEXTS
    assert printer.warning_summary()[-1].startswith(f"{1_000 + 50 - ProgressPrinter.MAX_WARNING_TEXTS} more warning")


def test_event_text_on_the_terminal_cannot_forge_lines_or_escape():
    import io

    from p2p_attendance.cli import ProgressPrinter

    stream = io.StringIO()
    ProgressPrinter(stream)("warning", "mDNS: bad\x1b[2J\nJoin code: 123456")
    assert stream.getvalue().count("\n") == 1 and "\x1b" not in stream.getvalue()
