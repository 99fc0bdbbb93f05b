"""Attendance report writers: JSON, CSV, XLSX and the CLI's text table."""
from p2p_attendance.report.writers import (
    CSV_COLUMNS,
    SUMMARY_HEADER,
    build_workbook,
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
)

__all__ = [
    "CSV_COLUMNS",
    "SUMMARY_HEADER",
    "build_workbook",
    "format_table",
    "format_time",
    "integrity_text",
    "read_json",
    "report_from_dict",
    "report_to_dict",
    "write_csv",
    "write_json",
    "write_reports",
    "write_xlsx",
]
