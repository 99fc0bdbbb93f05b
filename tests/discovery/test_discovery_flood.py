"""mDNS floods (issue 13, item 5): junk on the LAN must not delay or hide a real job.

Each attack runs in a private network namespace (``unshare -rn``) so the flood reaches no other
program or test on this computer, and no one else's adverts reach the directory under test. Inside
it, the directory and the real advertiser bind zeroconf to 127.0.0.1 as everywhere in the tests;
the attacker is a plain UDP socket sending hand-built mDNS answers from addresses added to the
namespace's own loopback device (10.99.x.y: not loopback addresses, so they count as other
machines). This file is also the child script: ``python test_discovery_flood.py SCENARIO WAIT``
prints one JSON line with what it measured.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

LO = ["127.0.0.1"]
KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"  # a valid-looking Z85 (40 chars)
MDNS_GROUP = ("224.0.0.251", 5353)
ATTACKER = "10.99.0.2"


# ------------------------------------------------------------------ the attacker (child side)


def _sender(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))  # the packets' source address: what the directory sees
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    return sock


def _answer(instance: str, props: dict | None, claimed_address: str = "10.50.0.1", port: int = 0) -> list[bytes]:
    """An mDNS answer for ``instance``: PTR only when ``props`` is None, else PTR+SRV+TXT+A."""
    from zeroconf import DNSAddress, DNSOutgoing, DNSPointer, DNSService, DNSText

    from p2p_attendance.discovery import SERVICE_TYPE, encode_txt

    out = DNSOutgoing(0x8400, True)  # response, authoritative
    full = f"{instance}.{SERVICE_TYPE}"
    out.add_answer_at_time(DNSPointer(SERVICE_TYPE, 12, 1, 120, full), 0)
    if props is not None:
        server = f"{instance}.local."
        out.add_answer_at_time(DNSService(full, 33, 0x8001, 120, 0, 0, port, server), 0)
        out.add_answer_at_time(DNSText(full, 16, 0x8001, 120, encode_txt(props)), 0)
        out.add_answer_at_time(DNSAddress(server, 1, 0x8001, 120, socket.inet_aton(claimed_address)), 0)
    return out.packets()


def _fake_props(state: str, i: int) -> dict:
    props = {"pv": "1", "av": "0.1.0", "name": f"Fake {i}", "st": state, "cores": "4"}
    if state == "requesting":
        props.update({"job": f"fake-job-{i}", "key": KEY, "open": "1"})
    return props


class _Flood:
    """Sends every packet, paced so the receiving socket's buffer keeps up, and re-sends the
    whole flood every few seconds (a live attacker answering refresh queries)."""

    def __init__(self, packets: list[tuple[str, bytes]]) -> None:
        self.packets = packets
        self.sockets = {src: _sender(src) for src in {src for src, _ in packets}}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def send_all(self) -> None:
        for n, (src, packet) in enumerate(self.packets):
            self.sockets[src].sendto(packet, MDNS_GROUP)
            if n % 10 == 9:
                time.sleep(0.01)

    def _run(self) -> None:
        while not self.stop.wait(4.0):
            self.send_all()

    def __enter__(self) -> _Flood:
        self.send_all()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        for sock in self.sockets.values():
            sock.close()


def _settle(directory, want: int, limit_s: float) -> int:
    """Wait until the directory's table stops growing (or holds ``want``); its size."""
    deadline = time.monotonic() + limit_s
    size, still = -1, 0
    while time.monotonic() < deadline and size < want and still < 8:
        time.sleep(0.25)
        now = len(directory.snapshot())
        still = still + 1 if now == size else 0
        size = now
    return size


def _real_advert(directory, state: str, wait: float) -> float | None:
    """Start a real advert (job or volunteer); seconds until the directory lists it, or None."""
    from p2p_attendance.discovery import Advertiser

    fields = {"port": 47001, "job_id": "real-job", "server_key": KEY} if state == "requesting" else {}
    started = time.monotonic()
    advertiser = Advertiser("Real", 2, interfaces=LO, state=state, **fields)
    try:
        found = directory.wait_for(lambda p: p.instance == advertiser.instance and p.state == state, wait)
        return round(time.monotonic() - started, 2) if found is not None else None
    finally:
        advertiser.close()


def scenario(name: str, wait: float) -> dict:
    from p2p_attendance.discovery import PeerDirectory

    directory = PeerDirectory(interfaces=LO)
    try:
        time.sleep(0.3)
        if name == "quiet":
            return {"seconds": _real_advert(directory, "requesting", wait)}
        if name == "ptr-flood":
            # 60 names whose SRV/TXT never come: each costs a resolution that times out.
            packets = [(ATTACKER, p) for i in range(60) for p in _answer(f"ghost-{i}", None)]
            with _Flood(packets):
                time.sleep(0.5)  # the directory has started resolving the ghosts
                return {"seconds": _real_advert(directory, "requesting", wait)}
        if name == "fake-adverts":
            # 520 valid fake jobs and 520 valid fake volunteers from ONE machine, each claiming
            # a different address in its A record (claims cost the attacker nothing).
            packets = [
                (ATTACKER, p)
                for i in range(520)
                for state in ("requesting", "sharing")
                for p in _answer(f"fake-{state[0]}-{i}", _fake_props(state, i), f"10.50.{i // 250}.{i % 250 + 1}", 40000 + i)
            ]
            with _Flood(packets):
                listed = _settle(directory, 1040, 15.0)
                seconds = _real_advert(directory, "requesting", wait)
                from_attacker = sum(1 for p in directory.snapshot() if p.instance.startswith("fake-"))
                return {"fake_listed_before": listed, "seconds": seconds, "fake_listed": from_attacker}
        if name in ("many-sources-volunteers", "many-sources-jobs"):
            # 80 machines x 8 fakes: every machine within the per-address limit, together 640.
            fake_state, real_state = (
                ("sharing", "requesting") if name == "many-sources-volunteers" else ("requesting", "sharing")
            )
            packets = [
                (f"10.99.1.{m + 1}", p)
                for m in range(80)
                for j in range(8)
                for p in _answer(f"fake-{m}-{j}", _fake_props(fake_state, m * 8 + j), f"10.99.1.{m + 1}", 40000 + j)
            ]
            with _Flood(packets):
                listed = _settle(directory, 640, 15.0)
                seconds = _real_advert(directory, real_state, wait)
                return {"fake_listed_before": listed, "seconds": seconds}
        raise ValueError(name)
    finally:
        directory.close()


# ------------------------------------------------------------------ the tests (parent side)


def _namespace_prefix() -> list[str]:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) for a private network namespace")
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {probe.stderr.decode(errors='replace').strip()}")
    setup = (
        "ip link set lo up && ip addr add 10.99.0.2/32 dev lo && "
        "for i in $(seq 1 80); do ip addr add 10.99.1.$i/32 dev lo; done && exec \"$@\""
    )
    return ["unshare", "-rn", "sh", "-c", setup, "sh"]


def run_scenario(name: str, wait: float = 10.0) -> dict:
    from conftest import child_env  # the child runs this file as a script, without pytest's conftest

    cmd = [*_namespace_prefix(), sys.executable, str(Path(__file__).resolve()), name, str(wait)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=wait + 90)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(name, result)
    return result


@pytest.mark.slow
def test_ptr_only_flood_does_not_delay_a_real_job():
    """60 PTR records naming services whose SRV/TXT never come: the job shows within seconds."""
    result = run_scenario("ptr-flood")
    assert result["seconds"] is not None, "the real job never showed during a PTR-only flood"
    assert result["seconds"] < 5.0  # undisturbed: ~1.7 s, nearly all of it zeroconf's name probing


@pytest.mark.slow
def test_fake_adverts_from_one_address_do_not_keep_a_real_job_out():
    """1,040 valid fake adverts (520 jobs, 520 volunteers) from one machine, each claiming another
    address: that machine gets a few entries, and the real job shows."""
    result = run_scenario("fake-adverts")
    assert result["seconds"] is not None, f"the real job never showed: {result}"
    assert result["seconds"] < 5.0
    assert result["fake_listed"] <= 16  # the per-address limit, whatever addresses the fakes claim


@pytest.mark.slow
@pytest.mark.parametrize("scenario_name", ["many-sources-volunteers", "many-sources-jobs"])
def test_fake_adverts_from_many_addresses_leave_room_for_the_other_kind(scenario_name):
    """640 fakes from 80 machines (8 each): fake volunteers cannot crowd out a job, fake jobs
    cannot crowd out a volunteer."""
    result = run_scenario(scenario_name)
    assert result["seconds"] is not None, f"the real advert never showed: {result}"
    assert result["seconds"] < 5.0


if __name__ == "__main__":
    print(json.dumps(scenario(sys.argv[1], float(sys.argv[2]))), flush=True)
