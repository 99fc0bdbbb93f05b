"""The Review screen's export: the file name's extension picks the writer, through the same
report.format_for_path the CLI uses (an Excel file named .csv helps nobody). Offscreen."""
import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from conftest import make_report  # noqa: E402

from p2p_attendance.report.writers import CSV_COLUMNS  # noqa: E402


@pytest.fixture
def review(qtbot, tmp_path, monkeypatch):
    from p2p_attendance.gui.review import ReviewController

    monkeypatch.setenv("P2P_ATTENDANCE_SETTINGS", str(tmp_path / "settings.ini"))
    controller = ReviewController()
    qtbot.addWidget(controller.view)
    controller.load(make_report())
    yield controller
    controller.flush_history()


def _is_csv(path):
    return path.read_bytes().startswith(b"\xef\xbb\xbf" + ",".join(CSV_COLUMNS).encode())


def test_the_name_typed_in_the_save_dialog_picks_the_writer(review, tmp_path, monkeypatch):
    from p2p_attendance.gui import review as review_module

    answers, offered = [], []

    def dialog(parent, caption, folder, filters, selected=""):
        offered.append(filters)
        return answers.pop(0)

    monkeypatch.setattr(review_module.QFileDialog, "getSaveFileName", staticmethod(dialog))
    # "Save as Excel", but the teacher types a .csv name: a CSV file by that name, not "x.csv.xlsx"
    answers.append((str(tmp_path / "typed.csv"), "Excel workbook (*.xlsx)"))
    assert review.export("xlsx") == tmp_path / "typed.csv" and _is_csv(tmp_path / "typed.csv")
    assert not (tmp_path / "typed.csv.xlsx").exists()
    # no extension typed, the CSV filter chosen in the dialog: that format, its extension added
    answers.append((str(tmp_path / "plain"), "CSV file (*.csv)"))
    assert review.export("xlsx") == tmp_path / "plain.csv" and _is_csv(tmp_path / "plain.csv")
    assert all(filters.count(";;") == 2 for filters in offered)  # every format offered in the dialog


def test_a_path_given_to_export_is_written_in_the_format_its_extension_names(review, tmp_path):
    written = review.export("xlsx", str(tmp_path / "report.json"))
    assert json.loads(written.read_text(encoding="utf-8"))["format"] == "p2p-attendance-report"
