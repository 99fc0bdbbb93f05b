"""errors.py: one home for the errors meant for people; the GUI and the CLI know them by class."""
import importlib
import logging
from pathlib import Path

import pytest

from p2p_attendance import errors

# (module, class name): where each user-facing error is raised, so `except` sites read the same.
RAISED_IN = [
    ("p2p_attendance.compute.video", "VideoError"),
    ("p2p_attendance.roster.store", "RosterError"),
    ("p2p_attendance.roster.enroll", "EnrollCancelled"),
    ("p2p_attendance.tools.demo", "SampleFacesMissing"),
    ("p2p_attendance.swarm.security", "KeyError_"),
    ("p2p_attendance.tools.selftest", "SelfTestFailure"),
    ("p2p_attendance.checkpoint", "CheckpointMismatch"),
]


@pytest.mark.parametrize("module, name", RAISED_IN)
def test_each_user_facing_error_is_defined_once_in_errors_as_a_user_error(module, name):
    cls = getattr(errors, name)
    assert cls.__module__ == "p2p_attendance.errors" and issubclass(cls, errors.UserError)
    assert getattr(importlib.import_module(module), name) is cls  # the module raises the very class


def test_errors_imports_nothing_from_the_app():
    source = Path(errors.__file__).read_text(encoding="utf-8")
    assert "import p2p_attendance" not in source and "from p2p_attendance" not in source


def test_old_bases_still_catch_what_they_caught():
    assert issubclass(errors.KeyError_, ValueError)  # `except (KeyError_, ValueError)` sites
    assert issubclass(errors.SampleFacesMissing, RuntimeError)


def test_checkpoint_mismatch_is_data_and_keeps_its_sentence():
    exc = errors.CheckpointMismatch(("roster_hash", "params"), {"tolerance": (0.5, 0.45)})
    assert exc.changed == ("roster_hash", "params") and exc.settings == {"tolerance": (0.5, 0.45)}
    assert str(exc) == "the saved progress belongs to a different roster hash and params; run without --resume to start afresh"
    import pickle

    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.changed, copy.settings, str(copy)) == (exc.changed, exc.settings, str(exc))


def test_gui_shows_a_user_errors_own_sentence_and_a_generic_one_for_anything_else():
    pytest.importorskip("PySide6")
    from p2p_attendance.gui.common import teacher_message

    assert teacher_message(errors.EnrollCancelled("Cancelled after 2 of 6 photos."), "fallback") == "Cancelled after 2 of 6 photos."
    assert teacher_message(errors.VideoError("Cannot open lecture.mp4."), "fallback") == "Cannot open lecture.mp4."

    class VideoError(Exception):  # someone else's class with our name: its text is not for people
        pass

    assert teacher_message(VideoError("av.error 0xdeadbeef"), "The job could not start.") == "The job could not start."
    assert teacher_message(RuntimeError("boom"), "The job could not start.") == "The job could not start."


def test_gui_task_logs_an_unexpected_error_and_says_something_generic(caplog):
    pytest.importorskip("PySide6")
    from p2p_attendance.gui.common import Task

    def broken():
        raise ZeroDivisionError("internal detail")

    task = Task(broken, message="Something went wrong.")
    failures = []
    task.failed.connect(lambda message, details: failures.append((message, details)))
    with caplog.at_level(logging.ERROR, logger="p2p_attendance.gui.common"):
        task._run()  # on this thread: the signal is delivered at once
    ((message, details),) = failures
    assert message == "Something went wrong." and "ZeroDivisionError: internal detail" in details
    assert any(record.exc_info and record.exc_info[0] is ZeroDivisionError for record in caplog.records)


def test_cli_turns_an_uncaught_user_error_into_one_error_line(monkeypatch, capsys):
    from p2p_attendance import cli

    def classes(args):
        raise errors.RosterError("The class folder cannot be read.")

    monkeypatch.setattr(cli, "cmd_classes", classes)
    assert cli.main(["classes"]) == cli.EXIT_FAILED
    assert capsys.readouterr().err.strip() == "error: The class folder cannot be read."
