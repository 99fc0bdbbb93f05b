"""mDNS discovery tests.

Network rules: every Zeroconf created here is bound to 127.0.0.1 (the autouse
``_loopback_only`` fixture enforces it) or lives inside a throw-away network namespace.
Every wait is bounded in time.
"""

from __future__ import annotations

import io
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import child_env
from zeroconf import ServiceInfo, Zeroconf

from p2p_attendance.discovery import (
    MDNS_INTERFACES_ENV,
    SERVICE_TYPE,
    Advertiser,
    BackgroundAdvertiser,
    PeerDirectory,
    PeerInfo,
    choose_lan_address,
    encode_txt,
    mdns,
    parse_txt,
    peer_from_properties,
    peers_cli,
    peers_command,
    resolve_interfaces,
)

LO = ["127.0.0.1"]
KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"  # a valid-looking Z85 (40 chars)
GOOD = {"pv": "1", "av": "0.1.0", "name": "Lab PC", "st": "idle", "cores": "4"}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Refuse to open zeroconf on default interfaces from the test process."""
    real = mdns.zeroconf_kwargs

    def guarded(interfaces):
        assert interfaces, "tests must bind zeroconf to explicit (loopback) interfaces"
        return real(interfaces)

    monkeypatch.setattr(mdns, "zeroconf_kwargs", guarded)


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    """One line of the child's stdout, or '' after ``timeout`` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else ""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


# ------------------------------------------------------------------ loopback, in-process


def test_two_copies_see_each_other_update_and_removal():
    adv_a = adv_b = dir_a = dir_b = None
    try:
        adv_a = Advertiser("Copy A", 4, interfaces=LO)
        adv_b = Advertiser("Copy B", 2, interfaces=LO)
        dir_a = PeerDirectory(interfaces=LO, ignore_instance=adv_a.instance)
        dir_b = PeerDirectory(interfaces=LO, ignore_instance=adv_b.instance)

        t0 = time.monotonic()
        b_in_a = dir_a.wait_for(lambda p: p.instance == adv_b.instance, 2.0)
        a_in_b = dir_b.wait_for(lambda p: p.instance == adv_a.instance, 2.0)
        assert time.monotonic() - t0 < 2.0
        assert a_in_b is not None and b_in_a is not None
        assert a_in_b.name == "Copy A" and a_in_b.cores == 4 and a_in_b.state == "idle"
        assert a_in_b.addresses == ("127.0.0.1",)
        assert a_in_b.port is None and a_in_b.job_id is None and a_in_b.endpoints() == []
        assert dir_a.get(adv_a.instance) is None  # ignore_instance works

        adv_a.update(state="requesting", port=47001, job_id="job-42", server_key=KEY, open_job=True)
        req = dir_b.wait_for(
            lambda p: p.instance == adv_a.instance and p.state == "requesting", 2.0
        )
        assert req is not None
        assert (req.port, req.job_id, req.server_key, req.open_job) == (47001, "job-42", KEY, True)
        assert req.endpoints() == ["tcp://127.0.0.1:47001"]
        assert req == adv_a.peer_info()

        adv_a.update(cores=8)
        assert dir_b.wait_for(lambda p: p.instance == adv_a.instance and p.cores == 8, 2.0)

        adv_a.close()
        assert dir_b.wait_until_gone(adv_a.instance, 2.0)
        kinds = [k for k, p in dir_b.poll(timeout=0.5) if p.instance == adv_a.instance]
        assert kinds[0] == "added" and kinds[-1] == "removed" and "updated" in kinds
        assert dir_a.get(adv_b.instance) is not None  # B still listed
    finally:
        for obj in (adv_a, adv_b, dir_a, dir_b):
            if obj is not None:
                obj.close()


@pytest.mark.parametrize("with_rev", [True, False], ids=["rev", "legacy-no-rev"])
def test_successive_updates_are_each_seen_promptly(monkeypatch, with_rev):
    """Regression: a second (third, ...) update used to be missed for ~8 s or for good.

    Flipping back to an earlier state re-sends records zeroconf still has cached, so
    they came with ``RecordUpdate.old`` set (no Updated callback, directory skipped
    them) and ``get_by_details`` returned the superseded copy; and a quick flip-back
    re-sent a byte-identical packet, which zeroconf drops within 0.8 s of the first.
    ``rev`` fixes the packets; the directory's own cache reading fixes the rest, which
    the ``legacy-no-rev`` case (an advertiser without ``rev``) checks on its own.
    """
    if not with_rev:
        real = mdns.build_properties
        monkeypatch.setattr(
            mdns, "build_properties", lambda **kw: real(**{**kw, "revision": None})
        )
    steps = [
        {"state": "idle"},
        {"state": "sharing"},
        {"state": "idle"},
        {"state": "requesting", "port": 47001, "job_id": "job-1", "server_key": KEY},
        {"state": "idle"},
        {"state": "sharing"},
        {"state": "requesting", "port": 47001, "job_id": "job-1", "server_key": KEY},
        {"state": "requesting", "port": 47002, "job_id": "job-2", "server_key": KEY},
        {"state": "idle"},
    ]
    adv = directory = None
    try:
        adv = Advertiser("Updater", 2, interfaces=LO)
        directory = PeerDirectory(interfaces=LO)
        assert directory.wait_for(lambda p: p.instance == adv.instance, 3.0) is not None
        for step in steps[1:]:
            if not with_rev:
                # Without rev a flip-back is a byte-identical packet, which zeroconf
                # drops for 0.8 s after the first copy: that case is out of our hands.
                time.sleep(0.9)
            adv.update(**step)
            want = adv.peer_info()
            t0 = time.monotonic()
            got = directory.wait_for(lambda p: p == want, 3.0)
            took = time.monotonic() - t0
            seen = directory.get(adv.instance)
            assert got is not None, f"update {step} not seen within 3 s, still {seen}"
            assert took < 3.0
        kinds = [k for k, p in directory.poll(timeout=0.2) if p.instance == adv.instance]
        assert kinds[0] == "added" and kinds.count("updated") >= len(steps) - 1
    finally:
        for obj in (adv, directory):
            if obj is not None:
                obj.close()


def test_freshest_cached_record_wins():
    """The directory reads the record that expires last, not zeroconf's last-inserted."""

    class Rec:
        def __init__(self, text, created, ttl):
            self.text, self.created, self.ttl = text, created, ttl

        def is_expired(self, now):
            return self.created + self.ttl * 1000 <= now

    class Cache:
        def __init__(self, recs):
            self.recs = recs

        def get_all_by_details(self, name, rtype, cls):
            return list(self.recs)

    class Zc:
        def __init__(self, recs):
            self.cache = Cache(recs)

    now = 100_000.0
    superseded = Rec(b"sharing", now - 500, 1)  # RFC 6762 10.2: cut to 1 s
    current = Rec(b"idle", now - 500, 15)
    expired = Rec(b"requesting", now - 20_000, 15)
    for order in ([superseded, current, expired], [expired, current, superseded]):
        assert mdns._freshest(Zc(order), "x", 16, now) is current
    newer = Rec(b"sharing2", now - 100, 15)  # two updates within 1 s: newest wins
    assert mdns._freshest(Zc([newer, current]), "x", 16, now) is newer
    assert mdns._freshest(Zc([expired]), "x", 16, now) is None


def test_advertiser_validation_and_idempotent_close():
    adv = Advertiser("Validation", 1, interfaces=LO)
    try:
        with pytest.raises(TypeError):
            adv.update(colour="red")
        with pytest.raises(ValueError):
            adv.update(state="requesting")  # no port / job id
        with pytest.raises(ValueError):
            adv.update(state="requesting", port=5000, job_id="j", server_key="short")
        with pytest.raises(ValueError):
            adv.update(state="bogus")
        with pytest.raises(ValueError):
            adv.update(cores=0)
        assert adv.peer_info().state == "idle"  # failed updates changed nothing
    finally:
        adv.close()
    adv.close()  # idempotent
    adv.update(state="sharing")  # no-op after close, no exception
    assert adv.closed
    with pytest.raises(ValueError):
        Advertiser("x", 1, interfaces=LO, state="requesting")


def test_malformed_record_on_the_wire_is_ignored():
    """A foreign responder publishing junk TXT must not crash or pollute the directory."""
    directory = PeerDirectory(interfaces=LO)
    zc = Zeroconf(interfaces=LO)
    good = None
    try:
        suffix = f"{os.getpid()}{random.randrange(1 << 16):04x}"
        bad_infos = [
            ServiceInfo(  # missing required keys
                SERVICE_TYPE, f"junk1-{suffix}.{SERVICE_TYPE}", parsed_addresses=LO,
                port=1, properties={"hello": "world"}, server=f"junk1-{suffix}.local.",
            ),
            ServiceInfo(  # requesting without job id, huge cores, bad key
                SERVICE_TYPE, f"junk2-{suffix}.{SERVICE_TYPE}", parsed_addresses=LO,
                port=2, properties={**GOOD, "st": "requesting", "cores": "99999999", "key": "x"},
                server=f"junk2-{suffix}.local.",
            ),
            ServiceInfo(  # binary garbage values
                SERVICE_TYPE, f"junk3-{suffix}.{SERVICE_TYPE}", parsed_addresses=LO,
                port=3, properties={b"pv": b"\xff\xfe", b"st": b"\x00", b"cores": b"-1"},
                server=f"junk3-{suffix}.local.",
            ),
        ]
        for info in bad_infos:
            zc.register_service(info, cooperating_responders=True)
        good = Advertiser("Good Neighbour", 2, interfaces=LO)
        assert directory.wait_for(lambda p: p.instance == good.instance, 3.0) is not None
        time.sleep(0.3)
        names = {p.instance for p in directory.snapshot()}
        assert not any(n.startswith("junk") and n.endswith(suffix) for n in names)
        assert directory._thread.is_alive()  # noqa: SLF001
    finally:
        if good is not None:
            good.close()
        zc.close()
        directory.close()


def test_crashed_peer_expires_without_goodbye():
    """SIGKILL the advertiser: no goodbye is sent, the directory must still drop it."""
    code = textwrap.dedent(
        """
        import select, sys
        from p2p_attendance.discovery import Advertiser
        a = Advertiser("Crashy", 2, interfaces=["127.0.0.1"])
        print(a.instance, flush=True)
        select.select([sys.stdin], [], [], 30)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=child_env(),
    )
    directory = PeerDirectory(interfaces=LO, expire_after=4.0, refresh_after=1.0)
    try:
        instance = _readline(proc, 15.0)
        assert instance, "advertiser child did not start"
        assert directory.wait_for(lambda p: p.instance == instance, 3.0) is not None
        # alive and quiet for longer than expire_after: refresh queries keep it listed
        for _ in range(12):  # 6 s, checked every 0.5 s
            assert directory.get(instance) is not None
            time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        t0 = time.monotonic()
        assert directory.wait_until_gone(instance, 10.0)
        assert time.monotonic() - t0 < 6.0  # <= expire_after + worker tick + slack
    finally:
        _stop(proc)
        directory.close()


def test_background_advertiser_announces_updates_made_while_it_starts():
    """One background advertiser for the CLI, the GUI and a job: returns at once, applies the
    latest fields when zeroconf has probed the name, reports its instance, withdraws on close."""
    directory = PeerDirectory(interfaces=LO)
    ready: list[str] = []
    started = time.monotonic()
    advert = BackgroundAdvertiser("Background", 2, LO, on_ready=ready.append)
    try:
        assert time.monotonic() - started < 0.5  # name probing (~1.7 s) happens on its thread
        assert advert.instance is None
        advert.update(state="requesting", port=47005, job_id="bg-job", server_key=KEY, open_job=True)
        with pytest.raises(ValueError):
            advert.update(state="requesting", port=None)  # refused before the advert is up, too
        assert advert.wait_ready(10.0) and ready == [advert.instance]
        peer = directory.wait_for(lambda p: p.instance == advert.instance and p.state == "requesting", 5.0)
        assert peer is not None and (peer.state, peer.port, peer.job_id, peer.open_job) == ("requesting", 47005, "bg-job", True)
        advert.update(state="sharing", port=None, job_id=None, server_key=None, open_job=False)
        assert directory.wait_for(lambda p: p.instance == advert.instance and p.state == "sharing", 5.0)
        instance = advert.instance
        advert.close()
        assert directory.wait_until_gone(instance, 3.0)
    finally:
        advert.close()
        directory.close()


def test_background_advertiser_closed_while_starting_never_stays_listed():
    directory = PeerDirectory(interfaces=LO)
    ready: list[str] = []
    try:
        advert = BackgroundAdvertiser("Closed Early", 2, LO, on_ready=ready.append)
        advert.close()  # before zeroconf finished probing the name
        assert not advert.wait_ready(10.0) and ready == []
        time.sleep(1.0)
        assert not [p for p in directory.snapshot() if p.name == "Closed Early"]
    finally:
        directory.close()


def test_background_advertiser_reports_failure_to_its_owner():
    errors: list[Exception] = []
    advert = BackgroundAdvertiser("Broken", 0, LO, on_error=errors.append)  # 0 cores: refused
    assert not advert.wait_ready(10.0)
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    advert.update(state="sharing")  # the owner carries on: no exception
    advert.close()


def test_name_heard_without_its_records_is_resolved_over_the_network(monkeypatch):
    """A PTR whose SRV/TXT are not cached yet: the directory asks the network (on zeroconf's
    loop) and lists the peer when the answers come."""
    requests: list[str] = []

    class CountingInfo(ServiceInfo):
        async def async_request(self, *args, **kwargs):
            requests.append(self.name)
            return await super().async_request(*args, **kwargs)

    real = mdns._records_from_cache

    def cached_only_after_a_request(zc, name):
        return real(zc, name) if name in requests else None

    monkeypatch.setattr(mdns, "ServiceInfo", CountingInfo)
    monkeypatch.setattr(mdns, "_records_from_cache", cached_only_after_a_request)
    adv = Advertiser("Needs Resolving", 2, interfaces=LO)
    directory = PeerDirectory(interfaces=LO)
    try:
        assert directory.wait_for(lambda p: p.instance == adv.instance, 5.0) is not None
        assert adv.service_name in requests
    finally:
        adv.close()
        directory.close()


def test_peers_command_json_and_table():
    adv = Advertiser("Cli Peer", 3, interfaces=LO)
    try:
        out, err = io.StringIO(), io.StringIO()
        assert peers_command(1.5, True, LO, out=out, err=err) == 0
        data = json.loads(out.getvalue())
        mine = [d for d in data if d["instance"] == adv.instance]
        assert mine and mine[0]["addresses"] == ["127.0.0.1"] and mine[0]["cores"] == 3
        out = io.StringIO()
        assert peers_command(1.5, False, LO, out=out, err=err) == 0
        table = out.getvalue()
        assert table.splitlines()[0].split()[:5] == ["NAME", "ADDRESS", "STATE", "CORES", "VERSION"]
        assert "Cli Peer" in table and "127.0.0.1" in table
    finally:
        adv.close()


def test_peers_command_nothing_found(monkeypatch):
    class Empty:
        def __init__(self, **kw):
            pass

        def wait_for(self, predicate, timeout):
            return None

        def snapshot(self):
            return []

        def close(self):
            pass

    monkeypatch.setattr(peers_cli, "PeerDirectory", Empty)
    out, err = io.StringIO(), io.StringIO()
    assert peers_command(0.1, True, LO, out=out, err=err) == 1
    assert json.loads(out.getvalue()) == []
    assert "multicast" in err.getvalue() and "--connect" in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert peers_command(0.1, False, LO, out=out, err=err) == 1
    assert out.getvalue() == "" and "No peers found" in err.getvalue()


# ------------------------------------------------------------------ pure functions


def test_txt_roundtrip_and_peer():
    props = {**GOOD, "st": "requesting", "job": "abc_1-2", "key": KEY, "open": "1"}
    parsed = parse_txt(encode_txt(props))
    assert parsed == props
    peer = peer_from_properties("lab-1-abcdef", parsed, ["10.0.0.5", "fe80::1"], 5555)
    assert peer == PeerInfo(
        instance="lab-1-abcdef", name="Lab PC", state="requesting", cores=4,
        app_version="0.1.0", protocol_version=1, addresses=("10.0.0.5", "fe80::1"),
        port=5555, job_id="abc_1-2", server_key=KEY, open_job=True,
    )
    assert peer.endpoints() == ["tcp://10.0.0.5:5555", "tcp://[fe80::1]:5555"]
    idle = peer_from_properties("x", {**props, "st": "idle"}, ["10.0.0.5"], 5555)
    assert idle.port is None and idle.job_id is None and idle.server_key is None
    assert not idle.open_job and idle.endpoints() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"\x05ab",  # length runs past the end
        b"\xff" + b"a" * 10,
        b"\x03a=b" * 400,  # too large overall
        b"\x03a=b" * 40,  # too many entries
        None,
        "pv=1",
        12,
    ],
)
def test_parse_txt_rejects_malformed(raw):
    assert parse_txt(raw) is None


def test_parse_txt_skips_bad_entries():
    raw = b"".join(
        bytes([len(e)]) + e
        for e in [b"", b"noequals", b"=novalue", b"\xffk=v", b"pv=\xff", b"st=idle", b"st=sharing", b"PV=1"]
    )
    assert parse_txt(raw) == {"st": "idle", "pv": "1"}  # first occurrence wins, keys lowercased


@pytest.mark.parametrize(
    "change",
    [
        {"pv": None},
        {"pv": "one"},
        {"pv": "-1"},
        {"pv": "99999999999"},
        {"st": None},
        {"st": "IDLE"},
        {"st": "hacking"},
        {"cores": "0"},
        {"cores": "1e9"},
        {"cores": "5000"},
        {"cores": " 4"},
        {"st": "requesting", "job": "j1"},  # no port (given below as None)
        {"st": "requesting", "key": KEY},  # no job id
        {"key": "short"},
        {"key": "x" * 39 + "~"},  # ~ is not Z85
        {"job": "has space"},
        {"job": "x" * 65},
    ],
)
def test_peer_from_properties_rejects_bad_values(change):
    props = {**GOOD, **change}
    props = {k: v for k, v in props.items() if v is not None}
    assert peer_from_properties("inst-1", props, ["10.0.0.1"], None) is None


def test_peer_from_properties_defensive_on_junk():
    assert peer_from_properties("inst", None, ["10.0.0.1"], 1) is None
    assert peer_from_properties("inst", GOOD, [], 1) is None  # no usable address
    assert peer_from_properties("inst", GOOD, ["not-an-ip", "0.0.0.0", "224.0.0.251"], 1) is None
    assert peer_from_properties("", GOOD, ["10.0.0.1"], 1) is None
    assert peer_from_properties("i" * 64, GOOD, ["10.0.0.1"], 1) is None
    assert peer_from_properties(123, GOOD, ["10.0.0.1"], 1) is None  # type: ignore[arg-type]
    for bad_name in ("Evil\x1b[2JName", "Teacher\u202egnp.exe", "x" * 65, "lone \udc80", "two\nlines"):
        # peer text rule (peertext.check_peer_text): the whole advert is refused
        assert peer_from_properties("inst", {**GOOD, "name": bad_name}, ["10.0.0.1"], 1) is None
    weird = peer_from_properties(
        "inst", {**GOOD, "name": " Évelyne's PC ", "av": "1.0; rm -rf /"},
        ["10.0.0.1", "10.0.0.1", "fe80::1%eth0"], 70000,
    )
    assert weird is not None
    assert weird.name == "Évelyne's PC"
    assert weird.app_version == "?"
    assert weird.addresses == ("10.0.0.1", "fe80::1")
    assert weird.port is None  # idle, and 70000 is not a port anyway
    nameless = peer_from_properties("inst", {k: v for k, v in GOOD.items() if k != "name"}, ["10.0.0.1"], 0)
    assert nameless.name == "inst"


def test_parser_fuzz_never_raises():
    rng = random.Random(1234)
    seed = encode_txt({**GOOD, "st": "requesting", "job": "j", "key": KEY, "open": "1"})
    for _ in range(3000):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            if op < 0.5 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op < 0.75 and data:
                del data[rng.randrange(len(data))]
            else:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        props = parse_txt(bytes(data))
        peer = peer_from_properties("fuzz", props, ["10.0.0.1"], rng.randrange(-5, 70000))
        assert peer is None or isinstance(peer, PeerInfo)


def test_resolve_interfaces_precedence(monkeypatch):
    monkeypatch.delenv(MDNS_INTERFACES_ENV, raising=False)
    assert resolve_interfaces(None) is None
    assert resolve_interfaces([]) is None
    monkeypatch.setenv(MDNS_INTERFACES_ENV, "192.168.1.5, 10.0.0.2")
    assert resolve_interfaces(None) == ["192.168.1.5", "10.0.0.2"]
    assert resolve_interfaces(["172.16.0.9"]) == ["172.16.0.9"]  # CLI wins
    assert resolve_interfaces(["10.1.1.1,10.1.1.2", "10.1.1.1"]) == ["10.1.1.1", "10.1.1.2"]
    with pytest.raises(ValueError):
        resolve_interfaces(["eth0"])
    with pytest.raises(ValueError):
        resolve_interfaces(["0.0.0.0"])
    monkeypatch.setenv(MDNS_INTERFACES_ENV, "bogus")
    with pytest.raises(ValueError):
        resolve_interfaces(None)
    monkeypatch.setenv(MDNS_INTERFACES_ENV, " , ")
    assert resolve_interfaces(None) is None


def test_choose_lan_address_is_ipv4():
    import ipaddress

    addr = choose_lan_address()
    assert ipaddress.ip_address(addr).version == 4


def test_import_is_headless_and_inert():
    code = (
        "import sys, threading; import p2p_attendance.discovery as d; "
        "assert not any(m.startswith('PySide6') for m in sys.modules), 'Qt imported'; "
        "assert threading.active_count() == 1, 'threads started at import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env(), timeout=60)


# ------------------------------------------------------------------ network namespaces

_ADVERTISE = textwrap.dedent(
    """
    import select, sys
    from p2p_attendance.discovery import Advertiser
    ifaces = sys.argv[1].split(",") if sys.argv[1] else None
    a = Advertiser("ns-peer", 3, interfaces=ifaces)
    print(a.instance, ",".join(a.addresses), flush=True)
    select.select([sys.stdin], [], [], 30)
    a.close()
    """
)

_BROWSE = textwrap.dedent(
    """
    import json, sys
    from p2p_attendance.discovery import PeerDirectory
    d = PeerDirectory(interfaces=sys.argv[1].split(","))
    p = d.wait_for(lambda p: p.instance == sys.argv[2], 8.0)
    print(json.dumps(p.to_dict() if p else None), flush=True)
    d.close()
    """
)


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def netns_pair():
    """Two namespaces joined by a veth pair: A=10.77.0.1/24, B=10.77.0.2/24."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' not found")
    tag = f"{os.getpid() % 100000}{random.randrange(100):02d}"
    ns_a, ns_b = f"p2pa{tag}", f"p2pb{tag}"
    veth_a, veth_b = f"p2pva{tag}", f"p2pvb{tag}"
    created: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            r = _ip("netns", "add", ns)
            if r.returncode != 0:
                pytest.skip(f"cannot create network namespace: {r.stderr.strip()}")
            created.append(ns)
        steps = [
            ("link", "add", veth_a, "type", "veth", "peer", "name", veth_b),
            ("link", "set", veth_a, "netns", ns_a),
            ("link", "set", veth_b, "netns", ns_b),
            ("-n", ns_a, "addr", "add", "10.77.0.1/24", "dev", veth_a),
            ("-n", ns_b, "addr", "add", "10.77.0.2/24", "dev", veth_b),
            ("-n", ns_a, "link", "set", "lo", "up"),
            ("-n", ns_b, "link", "set", "lo", "up"),
            ("-n", ns_a, "link", "set", veth_a, "up"),
            ("-n", ns_b, "link", "set", veth_b, "up"),
            # a default route makes choose_lan_address() pick the veth address; no
            # multicast route is needed (zeroconf sets IP_MULTICAST_IF per interface)
            ("-n", ns_a, "route", "add", "default", "dev", veth_a),
            ("-n", ns_b, "route", "add", "default", "dev", veth_b),
        ]
        for step in steps:
            r = _ip(*step)
            if r.returncode != 0:
                pytest.skip(f"network namespace setup failed: ip {' '.join(step)}: {r.stderr.strip()}")
        yield ns_a, ns_b
    finally:
        for ns in created:
            _ip("netns", "del", ns)  # deleting the namespace also deletes its veth end
        if _ip("link", "show", veth_a).returncode == 0:  # pragma: no cover - setup half-done
            _ip("link", "del", veth_a)


def _in_ns(ns: str, code: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-c", code, *args]


@pytest.mark.parametrize("advertiser_ifaces", ["10.77.0.1", ""], ids=["explicit", "default-route"])
def test_discovery_across_network_namespaces(netns_pair, advertiser_ifaces):
    ns_a, ns_b = netns_pair
    adv = subprocess.Popen(
        _in_ns(ns_a, _ADVERTISE, advertiser_ifaces), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
    )
    try:
        line = _readline(adv, 20.0)
        assert line, f"advertiser failed: {adv.poll()} {adv.stderr.read() if adv.poll() is not None else ''}"
        instance, addrs = line.split(" ", 1)
        assert addrs == "10.77.0.1"  # explicit, or chosen via the default route
        res = subprocess.run(
            _in_ns(ns_b, _BROWSE, "10.77.0.2", instance), capture_output=True, text=True,
            env=child_env(), timeout=30,
        )
        assert res.returncode == 0, res.stderr
        peer = json.loads(res.stdout.strip().splitlines()[-1])
        assert peer is not None, "peer in the other namespace not discovered"
        assert peer["addresses"] == ["10.77.0.1"]
        assert peer["name"] == "ns-peer" and peer["cores"] == 3 and peer["state"] == "idle"
    finally:
        if adv.stdin:
            adv.stdin.close()
        try:
            adv.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _stop(adv)
