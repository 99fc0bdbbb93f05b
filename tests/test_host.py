"""host.py: this computer's name, its cores and whether it runs on battery, in one place."""
import platform
import socket
from types import SimpleNamespace

from p2p_attendance import host


def test_machine_name_is_the_os_host_name_and_the_short_name_its_first_label(monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "Lab-12.school.example")
    assert host.machine_name() == "Lab-12.school.example"
    assert host.short_machine_name() == "Lab-12"
    assert host.short_machine_name("pc") == "pc"
    assert host.volunteer_name() == f"Lab-12.school.example ({platform.system()})"


def test_every_caller_names_this_computer_through_host(monkeypatch):
    from p2p_attendance.discovery import default_name
    from p2p_attendance.swarm.volunteer import Volunteer

    monkeypatch.setattr(socket, "gethostname", lambda: "Lab-12.school.example")
    assert default_name() == "Lab-12"  # the mDNS advert's name
    assert Volunteer(cores=1).name == "Lab-12.school.example"


def test_a_volunteer_lends_half_the_cores_and_at_least_one():
    assert [host.default_volunteer_cores(n) for n in (0, 1, 2, 3, 8, 64)] == [1, 1, 1, 1, 4, 32]
    assert host.default_volunteer_cores() == max(1, host.logical_cores() // 2)


def test_logical_cores_is_one_when_the_os_cannot_tell(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert host.logical_cores() == 1
    assert host.default_volunteer_cores() == 1
    from p2p_attendance.job import default_workers

    assert default_workers() == 1


def test_on_battery_only_when_the_battery_says_it_is_unplugged():
    def reading(plugged):
        return lambda: SimpleNamespace(power_plugged=plugged)

    assert host.on_battery(reading(False)) is True
    assert host.on_battery(reading(True)) is False
    assert host.on_battery(reading(None)) is False  # psutil cannot tell: count as plugged in
    assert host.on_battery(lambda: None) is False  # a desktop: no battery


def test_on_battery_is_false_where_the_sensors_cannot_be_read():
    def broken():
        raise NotImplementedError("no sensors on this platform")

    assert host.on_battery(broken) is False


def test_on_battery_reads_psutil_by_default(monkeypatch):
    import psutil

    monkeypatch.setattr(psutil, "sensors_battery", lambda: SimpleNamespace(power_plugged=False))
    assert host.on_battery() is True
