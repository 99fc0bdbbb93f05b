"""The lab admin's system-wide defaults file: read by the CLI volunteer and the Share screen;
what the user gives wins; bad values are ignored, never fatal."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the Share screen test; set before Qt starts

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from p2p_attendance.lab_defaults import PATH_ENV, VolunteerDefaults, defaults_path, volunteer_defaults  # noqa: E402


def write(tmp_path, text):
    path = tmp_path / "defaults.ini"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_gives_join_code_connect_line_and_cores(tmp_path):
    path = write(tmp_path, "[volunteer]\njoin_code = 482913 ; the lab's code\nconnect = tcp://10.0.0.5:47000/KEY\ncores = 2\n")
    assert volunteer_defaults(path) == VolunteerDefaults("482913", "tcp://10.0.0.5:47000/KEY", 2)


def test_a_missing_or_broken_file_and_bad_values_are_ignored(tmp_path):
    assert volunteer_defaults(tmp_path / "none.ini") == VolunteerDefaults()
    assert volunteer_defaults(write(tmp_path, "not an ini file\x00")) == VolunteerDefaults()
    bad = write(tmp_path, "[volunteer]\njoin_code = " + "9" * 40 + "\nconnect = tcp://x\x07\ncores = 100000\n")
    assert volunteer_defaults(bad) == VolunteerDefaults()
    assert volunteer_defaults(write(tmp_path, "[volunteer]\ncores = two\n")).cores is None


def test_the_file_lives_in_the_system_config_folder(monkeypatch):
    monkeypatch.delenv(PATH_ENV, raising=False)
    path = defaults_path()
    assert path.name == "defaults.ini" and path.parent.name == "p2p-attendance"
    if sys.platform.startswith("linux"):
        monkeypatch.delenv("XDG_CONFIG_DIRS", raising=False)
        assert str(defaults_path()) == "/etc/xdg/p2p-attendance/defaults.ini"


def test_cli_volunteer_uses_the_files_connect_line(tmp_path):
    """--no-discovery without --connect is refused, unless the lab's file names the requester:
    then its connect line is used (here a broken one, so the run stops at checking it)."""
    env = dict(os.environ, **{PATH_ENV: str(write(tmp_path, "[volunteer]\nconnect = tcp://127.0.0.1:9/not-a-key\ncores = 1\n"))})
    command = [sys.executable, "-m", "p2p_attendance", "volunteer", "--no-discovery", "--single-job"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 2
    assert "say where the requester is" not in run.stderr
    assert "key" in run.stderr.lower()
    env[PATH_ENV] = str(tmp_path / "none.ini")
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 2 and "say where the requester is" in run.stderr


def test_share_screen_starts_from_the_file_and_the_users_settings_win(qtbot, tmp_path, monkeypatch):
    pytest.importorskip("pytestqt")
    from p2p_attendance.gui.share import ShareController

    monkeypatch.setenv(PATH_ENV, str(write(tmp_path, "[volunteer]\njoin_code = 482913\nconnect = tcp://10.0.0.5:47000/KEY\ncores = 1\n")))
    monkeypatch.setenv("P2P_ATTENDANCE_SETTINGS", str(tmp_path / "settings.ini"))
    share = ShareController(use_discovery=False)
    qtbot.addWidget(share.view)
    assert share.view.join_code.text() == "482913"
    assert share.view.connect_line.text() == "tcp://10.0.0.5:47000/KEY"
    assert share.view.cores.value() == 1
    share.settings.setValue("share/join_code", "111111")
    share.settings.sync()
    again = ShareController(use_discovery=False)
    qtbot.addWidget(again.view)
    assert again.view.join_code.text() == "111111"
    share.shutdown()
    again.shutdown()
