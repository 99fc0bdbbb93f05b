"""Every finished report kept per class, private to the user (files 0600 in 0700 folders)."""
import dataclasses
import os
import stat

import pytest
from conftest import make_report

from p2p_attendance import paths
from p2p_attendance.report.history import list_reports, load_report, new_report_path, save_report

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_a_report_is_kept_with_its_overrides_and_reopens(tmp_path):
    report = make_report()
    path = save_report(new_report_path(report), report, {"s2": "present"}, exported=False)
    (saved,) = list_reports(report.job.class_name)
    assert saved.path == path and saved.overrides == {"s2": "present"} and not saved.exported
    assert [s.id for s in saved.report.students] == [s.id for s in report.students]
    assert saved.report.job.video == report.job.video
    save_report(path, report, {}, exported=True)  # the same entry, updated in place
    again = load_report(path)
    assert again.exported and again.overrides == {} and len(list_reports(report.job.class_name)) == 1


def test_reports_are_private_to_the_user_even_with_a_permissive_umask():
    old = os.umask(0)
    try:
        report = make_report()
        path = save_report(new_report_path(report), report, {}, exported=False)
    finally:
        os.umask(old)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(paths.history_dir()) == 0o700


def test_a_folder_made_open_before_is_closed_again():
    folder = paths.data_dir() / "history"
    folder.mkdir(mode=0o755, exist_ok=True)
    os.chmod(folder, 0o755)
    assert mode(paths.history_dir()) == 0o700


def test_newest_first_per_class_and_unreadable_files_skipped():
    old, new = make_report(), make_report()
    old = dataclasses.replace(old, job=dataclasses.replace(old.job, started_at="2026-01-05T09:00:00+01:00"))
    new = dataclasses.replace(new, job=dataclasses.replace(new.job, started_at="2026-02-05T09:00:00+01:00"))
    for report in (old, new):
        save_report(new_report_path(report), report, {}, exported=True)
    (paths.history_dir() / "physics_101" / "broken.json").write_text("{not json")
    other = dataclasses.replace(new, job=dataclasses.replace(new.job, class_name="Other class"))
    save_report(new_report_path(other), other, {}, exported=True)
    kept = list_reports(old.job.class_name)
    assert [k.report.job.started_at[:7] for k in kept] == ["2026-02", "2026-01"]
