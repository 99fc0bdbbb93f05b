"""A system-wide defaults file for lab volunteers, written by the lab admin once per machine:

    [volunteer]
    join_code = 482913            ; or leave it out
    connect = tcp://10.0.0.5:47000/KEY   ; the requester, when mDNS does not cross the lab's network
    cores = 2

Read by `p2p-attendance volunteer` and the GUI's Share screen. What the user gives (command-line
arguments, the Share screen's own saved settings) overrides it. The file is the admin's, so its
values are checked like any input; a bad value is ignored with a warning, never fatal."""
from __future__ import annotations

import configparser
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from p2p_attendance import APP_NAME

log = logging.getLogger(__name__)

PATH_ENV = "P2P_ATTENDANCE_SITE_DEFAULTS"  # another file (tests, portable installs)
MAX_CORES = 256
MAX_TEXT = 512


@dataclass(frozen=True)
class VolunteerDefaults:
    """The lab admin's defaults for the volunteer: join code, connect line, cores."""
    join_code: str = ""
    connect: str = ""
    cores: int | None = None


def defaults_path() -> Path:
    """/etc/xdg/p2p-attendance/defaults.ini on Linux, C:\\ProgramData\\p2p-attendance\\defaults.ini on Windows."""
    override = os.environ.get(PATH_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.site_config_dir(APP_NAME, appauthor=False)) / "defaults.ini"


def volunteer_defaults(path: Path | None = None) -> VolunteerDefaults:
    """The volunteer's defaults from the lab's defaults file; empty ones where it is missing or unreadable."""
    path = path or defaults_path()
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        return VolunteerDefaults()
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        log.warning("ignoring the lab defaults file %s: %s", path, exc)
        return VolunteerDefaults()
    if not parser.has_section("volunteer"):
        return VolunteerDefaults()
    section = parser["volunteer"]
    join_code = _text(section.get("join_code", ""), 32, "join_code", path)
    connect = _text(section.get("connect", ""), MAX_TEXT, "connect", path)
    cores = None
    raw = section.get("cores", "").strip()
    if raw:
        try:
            cores = int(raw)
        except ValueError:
            cores = None
        if cores is None or not 1 <= cores <= MAX_CORES:
            log.warning("ignoring cores = %r in %s: a whole number from 1 to %d", raw, path, MAX_CORES)
            cores = None
    return VolunteerDefaults(join_code, connect, cores)


def _text(value: str, limit: int, key: str, path: Path) -> str:
    value = value.strip()
    if len(value) > limit or not value.isprintable():
        log.warning("ignoring %s in %s: printable text of at most %d characters", key, path, limit)
        return ""
    return value
