"""Report writers: read every file back and check what a teacher (or another tool) would see."""
from __future__ import annotations

import copy
import csv
import datetime as dt
import json
import os
import shutil
import subprocess

import pytest
from conftest import make_report
from openpyxl import load_workbook

from p2p_attendance.attendance.model import (
    AttendanceReport,
)
from p2p_attendance.report import (
    CSV_COLUMNS,
    SUMMARY_HEADER,
    format_table,
    format_time,
    integrity_text,
    read_json,
    report_from_dict,
    report_to_dict,
    write_csv,
    write_json,
    write_reports,
    write_xlsx,
    writers,
)


@pytest.fixture
def report() -> AttendanceReport:
    return make_report()


def fill_rgb(cell) -> str | None:
    if cell.fill is None or cell.fill.fill_type != "solid":
        return None
    return cell.fill.start_color.rgb


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("seconds, text", [
    (None, ""), (0, "0:00"), (12.3, "0:12"), (59.6, "1:00"), (754, "12:34"), (3725, "1:02:05"),
])
def test_format_time(seconds, text):
    assert format_time(seconds) == text


# --------------------------------------------------------------------------- JSON


def test_report_to_dict_keys_and_rounding(report):
    report.students[0].presence = 0.83333333
    report.students[0].first_seen_s = 12.345
    report.students[0].best_distance = float("inf")
    d = report_to_dict(report)
    s = d["students"][0]
    assert {"id", "name", "status", "presence", "first_seen_s", "last_seen_s", "frames_seen",
            "manual"} <= set(s)
    assert s["presence"] == 0.833
    assert s["first_seen_s"] == 12.3
    assert s["best_distance"] is None  # inf is not valid JSON
    assert d["students"][2]["first_seen_s"] is None
    assert [x["manual"] for x in d["students"]] == [False, False, True]
    assert d["unknown_faces"][0]["label"] == "Unknown 1"
    assert d["window_s"] == 60.0 and d["presence_threshold"] == 0.5
    job = d["job"]
    for key in ("video", "class_name", "frames_total", "frames_processed", "frames_from_checkpoint",
                "sample_fps", "elapsed_s", "duration_s", "tolerance", "started_at", "warnings"):
        assert key in job, key
    assert job["peers"] == [{"name": "teacher-laptop", "frames": 200}, {"name": "lab-pc-3", "frames": 100}]
    json.dumps(d, allow_nan=False)  # really JSON-ready


def test_json_round_trip(report, tmp_path):
    path = write_json(report, tmp_path / "out" / "report.json")
    assert path.exists()
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["students"][0]["name"] == "Zoë Müller"
    assert "Zoë" in path.read_text(encoding="utf-8")  # not \u-escaped
    assert report_from_dict(raw) == report
    assert read_json(path) == report


def test_report_from_dict_tolerates_missing_optional_keys():
    d = {
        "students": [{"id": "s1", "name": "Ann", "status": "present", "presence": 1.0}],
        "window_s": 30,
        "window_starts_s": [0, 30],
        "presence_threshold": 0.5,
    }
    r = report_from_dict(d)
    s = r.students[0]
    assert (s.id, s.status, s.manual, s.first_seen_s, s.frames_seen, s.windows_seen) == (
        "s1", "present", False, None, 0, [])
    assert r.unknown_faces == []
    assert r.windows_observed == [True, True]
    assert r.job.video == "" and r.job.peers == [] and r.job.warnings == []


# --------------------------------------------------------------------------- CSV


def test_csv(report, tmp_path):
    path = write_csv(report, tmp_path / "report.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_COLUMNS
    assert len(rows) == 1 + 3
    by_id = {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    zoe = by_id["s001"]
    assert zoe["name"] == "Zoë Müller"
    assert zoe["status"] == "present"
    assert zoe["presence_pct"] == "80.0"
    assert zoe["first_seen"] == "0:12" and zoe["first_seen_s"] == "12.3"
    assert zoe["last_seen"] == "1:02:05" and zoe["last_seen_s"] == "3725.0"
    assert zoe["frames_seen"] == "42" and zoe["manual"] == "no"
    assert zoe["class"] == "Physics 101" and zoe["date"] == "2024-05-02"
    assert zoe["partial"] == "yes"  # 300 of 360 frames
    assert by_id["s002"]["status"] == "absent"
    chloe = by_id["s003"]
    assert chloe["manual"] == "yes"
    assert chloe["first_seen"] == "" and chloe["last_seen_s"] == ""


# --------------------------------------------------------------------------- XLSX


def test_xlsx_summary(report, tmp_path):
    path = write_xlsx(report, tmp_path / "report.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["Summary", "Counts", "Timeline", "Job"]
    ws = wb["Summary"]
    assert [c.value for c in ws[1]] == SUMMARY_HEADER
    assert all(c.font.bold for c in ws[1][:len(SUMMARY_HEADER)])
    assert ws.freeze_panes == "A2"

    assert [c.value for c in ws[2]] == [
        "s001", "Zoë Müller", "Present", 0.8, dt.timedelta(seconds=12), dt.timedelta(seconds=3725), 42, None, None,
        "Physics 101", dt.datetime(2024, 5, 2), "yes"]
    assert [c.value for c in ws[3]][:4] == ["s002", "Bob Lee", "Absent", 0.2]
    assert ws["H4"].value == "manual"  # Chloé's override is marked
    assert ws["H3"].value is None
    assert ws["D2"].number_format.endswith("%")

    assert fill_rgb(ws["C2"]) == writers.GREEN  # present
    assert fill_rgb(ws["C3"]) == writers.RED  # absent
    assert fill_rgb(ws["C4"]) == writers.GREEN  # manually present
    # Auto-sized: the name column fits the longest name and is wider than the "Frames" column.
    assert ws.column_dimensions["B"].width >= len("Chloé Durand")
    assert ws.column_dimensions["G"].width < ws.column_dimensions["B"].width

    assert ws.max_row == 4  # nothing below the students: counts and unknown faces have their own sheet


def test_xlsx_summary_notes_a_close_call(report, tmp_path):
    report.students[1].presence = 0.42  # Bob, absent, against the 50 % threshold
    ws = load_workbook(write_xlsx(report, tmp_path / "report.xlsx"))["Summary"]
    note = SUMMARY_HEADER.index("Note") + 1
    assert [ws.cell(row=r, column=note).value for r in (2, 3, 4)] == [None, "close: 42 % of 50 %", None]


def test_xlsx_summary_notes_an_absent_student_an_unsure_group_may_be(report, tmp_path):
    # Bob is absent and Unsure 1 looks like him (and like Zoë, who is present: no look changes that).
    ws = load_workbook(write_xlsx(with_unsure_group(report), tmp_path / "report.xlsx"))["Summary"]
    note = SUMMARY_HEADER.index("Note") + 1
    assert [ws.cell(row=r, column=note).value for r in (2, 3, 4)] == [None, "Unsure 1 may be them", None]


def test_xlsx_timeline_cells_carry_values_as_well_as_colour(report, tmp_path):
    wb = load_workbook(write_xlsx(report, tmp_path / "report.xlsx"))
    ws = wb["Timeline"]
    h = 5  # three title rows (the report is partial), a blank row, then the header
    assert [c.value for c in ws[h]] == ["Student", *(dt.timedelta(minutes=m) for m in range(6))]
    assert ws.cell(row=h, column=3).number_format == writers.DURATION_FORMAT
    assert ws.freeze_panes == f"B{h + 1}"
    assert [ws.cell(row=r, column=1).value for r in range(h + 1, h + 5)] == [
        "Zoë Müller", "Bob Lee", "Chloé Durand", "Unknown 1"]
    zoe, bob, unknown = h + 1, h + 2, h + 4
    # Zoë: seen in window 0 -> 1 and green; not seen in window 2 -> 0, no fill; window 3 unobserved -> empty, grey.
    assert (ws.cell(zoe, 2).value, fill_rgb(ws.cell(zoe, 2))) == (1, writers.TIMELINE_SEEN)
    assert (ws.cell(zoe, 4).value, fill_rgb(ws.cell(zoe, 4))) == (0, None)
    assert (ws.cell(zoe, 5).value, fill_rgb(ws.cell(zoe, 5))) == (None, writers.GREY)
    assert (ws.cell(bob, 5).value, fill_rgb(ws.cell(bob, 5))) == (None, writers.GREY)
    assert (ws.cell(bob, 3).value, fill_rgb(ws.cell(bob, 3))) == (1, writers.TIMELINE_SEEN)
    assert (ws.cell(unknown, 4).value, fill_rgb(ws.cell(unknown, 4))) == (1, writers.TIMELINE_SEEN)
    assert ws.cell(zoe, 2).number_format == writers.TIMELINE_FORMAT  # shown as a tick / a dot
    assert ws.column_dimensions["B"].width < 6  # narrow


def test_xlsx_job(report, tmp_path):
    wb = load_workbook(write_xlsx(report, tmp_path / "report.xlsx"))
    ws = wb["Job"]
    kv = {ws.cell(row=r, column=1).value: ws.cell(row=r, column=2).value for r in range(1, ws.max_row + 1)}
    assert kv["Video"] == "/videos/lecture 3.mp4"
    assert kv["Class"] == "Physics 101"
    assert kv["Started"] == dt.datetime(2024, 5, 2, 9, 15)  # a date-time cell, not text
    assert kv["Time zone"] == "UTC+02:00"
    assert kv["Video length"] == dt.timedelta(seconds=3730)
    assert kv["Frames total"] == 360
    assert kv["Frames processed"] == 300
    assert kv["Frames from checkpoint"] == 60
    assert kv["Sample fps"] == 1.0
    assert kv["Tolerance"] == 0.55
    assert kv["Presence threshold"] == 0.5
    assert kv["Window length (s)"] == 60
    assert kv["Rule"] == ("present = seen in at least 50% of the 60-second windows "
                          "in which the camera saw anyone")
    assert kv["Elapsed"] == dt.timedelta(seconds=95)
    assert kv["Manual overrides"] == 1
    assert kv["teacher-laptop"] == 200 and kv["lab-pc-3"] == 100
    assert kv["Warnings"] == "2 frames could not be decoded"
    assert kv["Sightings verified"] == 41 and kv["Lies caught"] == 2 and kv["Batches checked twice"] == 3
    assert kv["Helpers quarantined"] == "lab-pc-9: it claimed s1 in frame 12, where this computer found another face"


def test_integrity_figures_travel_in_json_and_read_as_one_line(report, tmp_path):
    back = read_json(write_json(report, tmp_path / "r.json"))
    assert back.job.integrity == report.job.integrity
    assert integrity_text(report.job.integrity) == ("41 sightings verified on this computer, 3 batches checked twice, 2 lies caught; "
                                                    "quarantined: lab-pc-9 (it claimed s1 in frame 12, where this computer found another face).")
    assert report_from_dict({"job": {}}).job.integrity.verified  # older files: nothing to show, nothing claimed


def test_xlsx_text_is_never_a_formula(report, tmp_path):
    report.students[1].name = "=HYPERLINK(\"http://x\")"
    wb = load_workbook(write_xlsx(report, tmp_path / "report.xlsx"))
    cell = wb["Summary"]["B3"]
    assert cell.value == "=HYPERLINK(\"http://x\")"
    assert cell.data_type == "s"
    report.job.class_name = "=1+1"  # also in title rows and page headers
    wb = load_workbook(write_xlsx(report, tmp_path / "report.xlsx"))
    assert all(c.data_type == "s" for ws in wb for row in ws.iter_rows() for c in row if c.value == "=1+1")


def test_summary_is_a_table_pandas_reads_as_it_is(report, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.read_excel(write_xlsx(report, tmp_path / "report.xlsx"), sheet_name="Summary")
    assert list(df.columns) == SUMMARY_HEADER
    assert list(df["Student ID"]) == ["s001", "s002", "s003"]  # no counts or unknown faces mixed in
    assert list(df["Status"]) == ["Present", "Absent", "Present"]
    # Real time and date cells arrive typed, not as text.
    assert df["First seen"][0] == pd.Timedelta(seconds=12)
    assert df["Last seen"][0] == pd.Timedelta(hours=1, minutes=2, seconds=5)
    assert pd.isna(df["First seen"][2])  # never seen: an empty cell
    assert str(df["Date"].dtype).startswith("datetime64") and df["Date"][0] == pd.Timestamp(2024, 5, 2)
    assert set(df["Class"]) == {"Physics 101"}


def test_counts_and_unknown_faces_have_their_own_sheet(report, tmp_path):
    ws = load_workbook(write_xlsx(report, tmp_path / "report.xlsx"))["Counts"]
    rows = [tuple(c.value for c in row) for row in ws.iter_rows()]
    kv = {r[0]: r[1] for r in rows}
    assert (kv["Present"], kv["Absent"], kv["Students in the class"], kv["Status set by hand"], kv["Unknown faces"]) == (2, 1, 3, 1, 1)
    unknown = next(r for r in rows if r[0] == "Unknown 1")
    assert unknown[:4] == ("Unknown 1", 5, dt.timedelta(seconds=125), dt.timedelta(seconds=140))


def with_unsure_group(report: AttendanceReport) -> AttendanceReport:
    """The report with an unsure group besides its stranger: faces that look like two students."""
    from p2p_attendance.attendance.model import UnknownPerson

    report = copy.deepcopy(report)
    report.unknown_faces.append(UnknownPerson("Unsure 1", 7, 30.0, 90.0, [True, False, True], ["Bob Lee", "Zoë Müller"], ["s002", "s001"]))
    return report


def test_an_unsure_group_is_counted_apart_from_unknown_people_with_whom_it_looks_like(report, tmp_path):
    ws = load_workbook(write_xlsx(with_unsure_group(report), tmp_path / "report.xlsx"))["Counts"]
    rows = [tuple(c.value for c in row) for row in ws.iter_rows()]
    kv = {r[0]: r[1] for r in rows}
    assert (kv["Unknown faces"], kv["Unsure faces (look like students)"]) == (1, 1)
    header = next(r for r in rows if r[0] == "Label")
    assert header[:5] == ("Label", "Frames", "First seen", "Last seen", "Looks like")
    assert next(r for r in rows if r[0] == "Unsure 1")[4] == "Bob Lee, Zoë Müller"
    assert next(r for r in rows if r[0] == "Unknown 1")[4] in (None, "")  # a stranger looks like nobody
    # The names stand apart from the right-aligned time before them (LibreOffice's PDF of the sheet
    # read "0:00:59Rafael Costa" without it).
    looks_like = next(row[4] for row in ws.iter_rows() if row[0].value == "Unsure 1")
    assert looks_like.alignment.indent >= 1


def test_json_keeps_an_unsure_groups_looks_like_and_reads_old_reports_without_it(report, tmp_path):
    unsure = with_unsure_group(report)
    raw = json.loads(write_json(unsure, tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [u["looks_like"] for u in raw["unknown_faces"]] == [[], ["Bob Lee", "Zoë Müller"]]
    assert [u["looks_like_ids"] for u in raw["unknown_faces"]] == [[], ["s002", "s001"]]
    back = report_from_dict(raw)
    assert back == unsure and [u.unsure for u in back.unknown_faces] == [False, True]
    for u in raw["unknown_faces"]:
        del u["looks_like"]  # a report written before unsure groups: every group was an unknown person
    assert [(u.label, u.looks_like, u.unsure) for u in report_from_dict(raw).unknown_faces] == [
        ("Unknown 1", [], False), ("Unsure 1", [], False)]
    raw["unknown_faces"][1]["looks_like"] = "Bob Stone"  # not a list: ignored, not split into letters
    assert report_from_dict(raw).unknown_faces[1].looks_like == []
    # A damaged or edited file: only non-empty printable names, no more than a group ever has.
    raw["unknown_faces"][1]["looks_like"] = ["", None, {"a": 1}, "Bob\x1b[2J Stone", "x" * 5000, "Ann", "Cy", "Di"]
    names = report_from_dict(raw).unknown_faces[1].looks_like
    assert names == ["Bob?[2J Stone", "x" * 200, "Ann"]
    # Ids flag an absent student for a look: only the report's own students' ids are read back.
    raw["unknown_faces"][1]["looks_like_ids"] = ["s002", "nobody", 7, None, "s001"]
    assert report_from_dict(raw).unknown_faces[1].looks_like_ids == ["s002", "s001"]
    raw["unknown_faces"][1]["looks_like_ids"] = "s002"
    assert report_from_dict(raw).unknown_faces[1].looks_like_ids == []


def test_format_table_says_whom_an_unsure_group_looks_like(report):
    assert "Unsure 1 (7 frames, 0:30-1:30, looks like Bob Lee or Zoë Müller)" in format_table(with_unsure_group(report))


def test_every_sheet_says_class_date_and_video(report, tmp_path):
    wb = load_workbook(write_xlsx(report, tmp_path / "report.xlsx"))
    for name in ("Counts", "Timeline", "Job"):  # Summary keeps A1 for its header row (pandas)
        ws = wb[name]
        assert ws["A1"].value == "Attendance: Physics 101", name
        assert ws["A1"].font.bold and ws["A1"].font.size >= 14
        assert ws["A2"].value == "Date: 2024-05-02 09:15 · Video: lecture 3.mp4 (1:02:10)", name
    for ws in wb:  # and every printed page, Summary's included
        assert ws.oddHeader.left.text == "Attendance: Physics 101", ws.title
        assert "2024-05-02 09:15" in ws.oddHeader.right.text and "lecture 3.mp4" in ws.oddHeader.right.text


def test_print_setup_landscape_one_page_wide_with_repeated_header(report, tmp_path):
    wb = load_workbook(write_xlsx(report, tmp_path / "report.xlsx"))
    for ws in wb:
        assert ws.page_setup.orientation == "landscape", ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert int(ws.page_setup.fitToWidth) == 1 and int(ws.page_setup.fitToHeight) == 0, ws.title
        assert "&P" in ws.oddFooter.right.text
    assert wb["Summary"].print_title_rows == "$1:$1"
    assert wb["Timeline"].print_title_rows == "$5:$5" and wb["Timeline"].print_title_cols == "$A:$A"


def test_every_styled_font_has_a_name(report, tmp_path):
    wb = load_workbook(write_xlsx(report, tmp_path / "report.xlsx"))
    bold = [c for ws in wb for row in ws.iter_rows() for c in row if c.value is not None and c.font.bold]
    assert len(bold) > 20
    assert {c.font.name for c in bold} == {writers.FONT_NAME}
    assert all(c.font.name for ws in wb for row in ws.iter_rows() for c in row if c.value is not None)


def test_partial_report_says_so_in_every_format(report, tmp_path):
    assert report.job.partial  # 300 of 360 frames
    written = write_reports(report, xlsx=tmp_path / "p.xlsx", csv=tmp_path / "p.csv", json_path=tmp_path / "p.json")
    assert json.loads(written[2].read_text(encoding="utf-8"))["partial"] is True
    with open(written[1], encoding="utf-8-sig", newline="") as f:
        assert {row["partial"] for row in csv.DictReader(f)} == {"yes"}
    wb = load_workbook(written[0])
    for name in ("Counts", "Timeline", "Job"):
        assert wb[name]["A3"].value.startswith("PARTIAL REPORT: stopped after 300 of 360 frames"), name
    assert {wb["Summary"].cell(row=r, column=len(SUMMARY_HEADER)).value for r in (2, 3, 4)} == {"yes"}
    assert wb["Summary"].oddHeader.center.text == "PARTIAL REPORT"

    report.job.frames_processed = report.job.frames_total  # a finished job: nothing of the kind
    written = write_reports(report, xlsx=tmp_path / "f.xlsx", csv=tmp_path / "f.csv", json_path=tmp_path / "f.json")
    assert json.loads(written[2].read_text(encoding="utf-8"))["partial"] is False
    wb = load_workbook(written[0])
    assert not any("PARTIAL" in str(c.value) for ws in wb for row in ws.iter_rows() for c in row)
    assert wb["Summary"].oddHeader.center.text is None


@pytest.mark.slow  # starts LibreOffice
@pytest.mark.skipif(not shutil.which("soffice"), reason="LibreOffice (soffice) is not installed")
def test_libreoffice_converts_the_workbook_one_page_per_sheet(report, tmp_path):
    """Converted to PDF: every sheet fits one page wide, and the timeline prints ticks, not blanks."""
    path = write_xlsx(report, tmp_path / "report.xlsx")
    profile = (tmp_path / "lo-profile").as_uri()  # its own profile: runs beside an open LibreOffice
    done = subprocess.run(["soffice", f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
                           "--outdir", str(tmp_path), str(path)], capture_output=True, text=True, timeout=180)
    pdf = tmp_path / "report.pdf"
    assert done.returncode == 0 and pdf.is_file(), done.stderr
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is not installed")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60).stdout
    pages = text.split("\f")[:-1]
    assert len(pages) == 4  # Summary, Counts, Timeline, Job: one page each, none split across two
    assert "Student ID" in pages[0] and "Zoë Müller" in pages[0] and "0:00:12" in pages[0]
    assert "Attendance: Physics 101" in pages[2] and "✓" in pages[2] and "·" in pages[2]
    assert "2024-05-02 09:15:00" in pages[3]
    assert "PARTIAL REPORT" in pages[0]


# --------------------------------------------------------------------------- atomic writes


def test_failed_write_keeps_old_file_and_leaves_no_temp(report, tmp_path, monkeypatch):
    path = write_xlsx(report, tmp_path / "report.xlsx")
    before = path.read_bytes()

    def boom(self, filename):
        with open(filename, "wb") as f:
            f.write(b"half a workbook")
        raise OSError("disk full")

    monkeypatch.setattr("openpyxl.workbook.workbook.Workbook.save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_xlsx(report, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["report.xlsx"]


def test_write_reports(report, tmp_path):
    written = write_reports(report, xlsx=tmp_path / "a.xlsx", csv=tmp_path / "a.csv",
                            json_path=tmp_path / "a.json")
    assert [p.name for p in written] == ["a.xlsx", "a.csv", "a.json"]
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "a.json", "a.xlsx"]
    assert write_reports(report) == []


# --------------------------------------------------------------------------- text table


def test_format_table(report):
    text = format_table(report)
    lines = text.splitlines()
    assert "\x1b" not in text
    assert lines[0].split() == ["Student", "Status", "Presence", "First", "Last", "Frames"]
    for s in report.students:
        line = next(ln for ln in lines if s.name in ln)
        assert s.status in line
    assert "Zoë Müller" in text and "Bob Lee" in text and "Chloé Durand" in text
    bob = next(ln for ln in lines if "Bob Lee" in ln)
    assert "absent" in bob and "20%" in bob and "1:10" in bob
    chloe = next(ln for ln in lines if "Chloé" in ln)
    assert "present*" in chloe
    assert "Unknown faces: Unknown 1" in text
    # Aligned: the status column starts at the same place on every student row.
    rows = lines[2:5]
    starts = {ln.index("present") if "present" in ln else ln.index("absent") for ln in rows}
    assert len(starts) == 1
    assert "1 of 3" not in text and "2 of 3 present" in text


def test_format_table_no_unknowns():
    r = copy.deepcopy(make_report())
    r.unknown_faces = []
    assert "Unknown faces: none" in format_table(r)


def test_a_saved_name_with_a_lone_surrogate_is_replaced_not_a_crash(report, tmp_path):
    """Names saved before they were checked at entry (roster.store.check_name) may hold a lone
    surrogate, which UTF-8 cannot encode: every writer still writes the report, with "?" for it."""
    report.students[0].name = "Zoë\ud800"
    report.job.class_name = "Physics\udcff"
    assert read_json(write_json(report, tmp_path / "r.json")).students[0].name == "Zoë?"
    with open(write_csv(report, tmp_path / "r.csv"), encoding="utf-8-sig", newline="") as f:
        row = dict(zip(CSV_COLUMNS, list(csv.reader(f))[1]))
    assert row["name"] == "Zoë?" and row["class"] == "Physics?"
    assert load_workbook(write_xlsx(report, tmp_path / "r.xlsx"))["Summary"] is not None
