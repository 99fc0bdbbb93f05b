"""Which network interface(s) mDNS uses, and which address we advertise.

Why this matters: laptops are multi-homed. Besides the classroom Wi-Fi/Ethernet they
often have a VPN tunnel, docker/virtualbox bridges, WSL/Hyper-V switches... If a peer
advertises *all* of its addresses, the others pick one at random and try to connect to
an unreachable 172.17.0.1 (docker) or a VPN address. So we advertise only one address:
the one the operating system would use for ordinary outbound traffic (the interface
holding the default route). When that guess is wrong (e.g. a full-tunnel VPN owns the
default route) the user names the interface address explicitly with
``--mdns-interface ADDR`` or the ``P2P_ATTENDANCE_MDNS_INTERFACES`` environment variable.
"""

from __future__ import annotations

import ipaddress
import os
import socket

from zeroconf import InterfaceChoice, IPVersion

MDNS_INTERFACES_ENV = "P2P_ATTENDANCE_MDNS_INTERFACES"

# Destinations for the "UDP connect" trick. connect() on a UDP socket sends nothing; it
# only asks the kernel's routing table which source address it would use. The targets
# are documentation ranges (RFC 5737, never assigned to real hosts), so they follow the
# *default* route: a private 10.x/172.16.x target could instead match a split-tunnel
# VPN route (10.0.0.0/8 is common) or a docker bridge (172.17.0.0/16).
_PROBE_TARGETS = ("203.0.113.1", "198.51.100.1", "192.0.2.1")


def _split(values: list[str] | tuple[str, ...] | str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        for part in str(v).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def _validate(addresses: list[str], origin: str) -> list[str]:
    for a in addresses:
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            raise ValueError(f"{origin}: {a!r} is not an IP address") from None
        if ip.is_unspecified or ip.is_multicast:
            raise ValueError(f"{origin}: {a!r} is not an interface address")
    return addresses


def resolve_interfaces(cli_values: list[str] | None) -> list[str] | None:
    """Interface addresses for mDNS: command line > environment variable > None.

    ``None`` means "no explicit choice": zeroconf listens on its default interfaces and
    we advertise :func:`choose_lan_address`. Values may be comma separated. Raises
    ``ValueError`` for something that is not an IP address.
    """
    if cli_values:
        found = _split(cli_values)
        if found:
            return _validate(found, "--mdns-interface")
    env = os.environ.get(MDNS_INTERFACES_ENV, "")
    found = _split(env)
    if found:
        return _validate(found, MDNS_INTERFACES_ENV)
    return None


def choose_lan_address() -> str:
    """The IPv4 address of the interface holding the default route; 127.0.0.1 if none."""
    for target in _PROBE_TARGETS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.connect((target, 9))  # no packet is sent for UDP connect()
            addr = sock.getsockname()[0]
        except OSError:
            continue
        finally:
            sock.close()
        if addr and addr != "0.0.0.0":
            return addr
    return "127.0.0.1"


def zeroconf_kwargs(interfaces: list[str] | None) -> dict:
    """Keyword arguments for ``Zeroconf(...)``.

    Explicit addresses bind zeroconf to exactly those interfaces. IPv4-only address
    lists use ``IPVersion.V4Only`` explicitly (zeroconf >= 0.131 autodetects this for a
    list, but being explicit avoids opening IPv6 sockets on hosts where that fails).
    With no explicit choice we use zeroconf's default interfaces, IPv4 only: we only
    advertise IPv4 addresses, and IPv6 multicast sockets are a common failure point.
    """
    if interfaces:
        all_v4 = all(ipaddress.ip_address(a).version == 4 for a in interfaces)
        return {
            "interfaces": list(interfaces),
            "ip_version": IPVersion.V4Only if all_v4 else IPVersion.All,
        }
    return {"interfaces": InterfaceChoice.All, "ip_version": IPVersion.V4Only}


def advertised_addresses(interfaces: list[str] | None) -> list[str]:
    """What an advertiser publishes: the given addresses, else the chosen LAN address."""
    if interfaces:
        return list(interfaces)
    return [choose_lan_address()]
