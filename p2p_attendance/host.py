"""This computer: its name as others see it, its cores, whether it runs on battery.

Imports nothing from the app. psutil is imported only when the battery is asked about.
"""
from __future__ import annotations

import os
import platform
import socket
from collections.abc import Callable


def machine_name() -> str:
    """The host name the operating system gives this computer (may be a dotted domain name)."""
    return socket.gethostname()


def short_machine_name(name: str | None = None) -> str:
    """The host name's first label: "lab-12" of "lab-12.school.example"."""
    return (machine_name() if name is None else name).split(".", 1)[0]


def volunteer_name() -> str:
    """How a volunteer introduces itself to the teacher's computer: "lab-12 (Linux)"."""
    return f"{machine_name()} ({platform.system()})"


def logical_cores() -> int:
    """Logical cores of this computer (1 when the OS cannot tell)."""
    return os.cpu_count() or 1


def default_volunteer_cores(total: int | None = None) -> int:
    """Cores a volunteer lends unless told otherwise: half of them, at least one, so a student's
    laptop stays usable."""
    return max(1, (logical_cores() if total is None else total) // 2)


def _psutil_battery():
    import psutil

    return psutil.sensors_battery()


def on_battery(read_battery: Callable[[], object] | None = None) -> bool:
    """True only when we know the computer runs on battery: computers without one (desktops), or
    where it cannot be read, count as plugged in. read_battery() returns psutil's sensors_battery()
    record (``.power_plugged`` True, False or None for unknown) or None; tests pass their own."""
    try:
        battery = (read_battery or _psutil_battery)()
    except Exception:  # noqa: BLE001 - no sensors on this platform, or psutil missing
        return False
    return battery is not None and getattr(battery, "power_plugged", None) is False
