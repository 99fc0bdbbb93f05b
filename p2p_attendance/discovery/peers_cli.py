"""``p2p-attendance peers``: list the copies of the app visible through mDNS."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from .mdns import PeerDirectory
from .records import PeerInfo

NOTHING_FOUND_HINT = (
    "No peers found via mDNS within {timeout:g} s.\n"
    "mDNS (multicast DNS, UDP port 5353) may be blocked on this network: campus and\n"
    "guest Wi-Fi often filter multicast, and so do some firewalls and VPNs. Joining\n"
    "directly with --connect HOST:PORT still works. If this computer has several\n"
    "network interfaces, try --mdns-interface ADDR with the classroom LAN address."
)


def _table(peers: list[PeerInfo]) -> str:
    header = ("NAME", "ADDRESS", "STATE", "CORES", "VERSION", "JOB")
    rows = []
    for p in peers:
        addr = ", ".join(p.addresses)
        if p.port is not None:
            addr = ", ".join(f"{a}:{p.port}" if ":" not in a else f"[{a}]:{p.port}" for a in p.addresses)
        version = f"{p.app_version} (p{p.protocol_version})"
        job = (p.job_id or "-") + (" open" if p.open_job else "")
        rows.append((p.name, addr, p.state, str(p.cores), version, job))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def peers_command(
    timeout: float,
    as_json: bool,
    interfaces: list[str] | None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    ignore_instance: str | None = None,
) -> int:
    """Browse for ``timeout`` seconds and print what was seen.

    Returns 0 when at least one peer was found, 1 when none was (the hint goes to
    stderr; with ``--json`` stdout still gets ``[]``), 2 when mDNS could not start.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    timeout = max(0.1, float(timeout))
    try:
        directory = PeerDirectory(interfaces=interfaces, ignore_instance=ignore_instance)
    except (OSError, ValueError) as exc:
        print(f"Cannot start mDNS discovery: {exc}", file=err)
        return 2
    try:
        # Peers answer the browser's first query within ~0.2 s; keep listening for the
        # whole timeout so slow (Wi-Fi power-save) responders make it too.
        directory.wait_for(lambda _p: False, timeout)
        peers = directory.snapshot()
    finally:
        directory.close()
    if as_json:
        print(json.dumps([p.to_dict() for p in peers], indent=2), file=out)
    elif peers:
        print(_table(peers), file=out)
    if not peers:
        print(NOTHING_FOUND_HINT.format(timeout=timeout), file=err)
        return 1
    return 0
