"""What a peer advertises, and the defensive parser for what arrives from the network.

Everything in a TXT record came from some machine on the LAN and is treated as untrusted:
it is parsed by hand (no eval, no pickle, no JSON), size-limited, and any record that
does not validate is dropped (the parser returns ``None``); it never raises on bad input.

TXT keys (all values are short ASCII/UTF-8 strings):

========  =====================================================================
key       meaning
========  =====================================================================
``pv``    protocol version (decimal int)
``av``    app version (printable ASCII, <= 32 chars)
``name``  human-readable name (UTF-8, <= 64 chars, ``peertext.check_peer_text``)
``st``    ``idle`` | ``sharing`` | ``requesting``
``cores`` usable CPU cores (1..4096)
``job``   job id when requesting (``[A-Za-z0-9_-]{1,64}``)
``key``   CurveZMQ server public key when requesting (Z85, exactly 40 chars)
``open``  ``1`` when the requester accepts anyone on this network (no join code)
``cls``   the class a requester takes attendance for (peer text, <= 64 chars)
========  =====================================================================

The requester's admission port travels in the SRV record (0 = no port); the data port is told
there, once the volunteer proved it knows the join code.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from p2p_attendance.peertext import check_peer_text

SERVICE_TYPE = "_p2p-attendance._tcp.local."

STATES = ("idle", "sharing", "requesting")

# Limits for data coming off the network.
MAX_TXT_BYTES = 1024  # whole TXT rdata; ours is ~150 bytes
MAX_TXT_ENTRIES = 32
MAX_NAME_CHARS = 64
MAX_INSTANCE_CHARS = 63  # one DNS label
MAX_APP_VERSION_CHARS = 32
MAX_ADDRESSES = 8
MAX_CORES = 4096

_JOB_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_Z85_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_SET = frozenset(_Z85_CHARS)
_APP_VERSION_RE = re.compile(r"[0-9A-Za-z.+_-]{1,32}")
_INT_RE = re.compile(r"[0-9]{1,6}")


@dataclass(frozen=True)
class PeerInfo:
    """One running copy of the app, as seen through mDNS."""

    instance: str  # unique service instance name, e.g. "lab-pc-3-a1b2c3"
    name: str  # human name (host-based by default, user-settable)
    state: str  # "idle" | "sharing" | "requesting"
    cores: int
    app_version: str
    protocol_version: int
    addresses: tuple[str, ...]
    port: int | None  # requester's ZeroMQ ROUTER port when requesting
    job_id: str | None
    server_key: str | None  # CurveZMQ public key (Z85 text, 40 chars)
    open_job: bool  # requester accepts anyone on this network (no join code)
    class_name: str = ""  # the class a requester takes attendance for

    def endpoints(self) -> list[str]:
        """``tcp://ADDR:PORT`` for every advertised address (empty without a port)."""
        if self.port is None:
            return []
        out = []
        for addr in self.addresses:
            host = f"[{addr}]" if ":" in addr else addr
            out.append(f"tcp://{host}:{self.port}")
        return out

    def to_dict(self) -> dict:
        """JSON-friendly dict (used by ``p2p-attendance peers --json``)."""
        return {
            "instance": self.instance,
            "name": self.name,
            "state": self.state,
            "cores": self.cores,
            "app_version": self.app_version,
            "protocol_version": self.protocol_version,
            "addresses": list(self.addresses),
            "port": self.port,
            "job_id": self.job_id,
            "server_key": self.server_key,
            "open_job": self.open_job,
            "class_name": self.class_name,
            "endpoints": self.endpoints(),
        }


# ---------------------------------------------------------------- validators (shared by
# the advertiser, which raises ValueError on bad local values, and the parser, which
# drops bad remote records)


def valid_state(value: object) -> bool:
    """Whether an advert's state field is one of STATES."""
    return isinstance(value, str) and value in STATES


def valid_cores(value: object) -> bool:
    """Whether an advert's core count is an int in 1..MAX_CORES."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_CORES


def valid_port(value: object) -> bool:
    """Whether an advert's port is an int in 1..65535."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def valid_job_id(value: object) -> bool:
    """Whether an advert's job id has the job id's form."""
    return isinstance(value, str) and _JOB_ID_RE.fullmatch(value) is not None


def valid_server_key(value: object) -> bool:
    """Whether an advert's server key is 40 Z85 characters (a CurveZMQ public key)."""
    return isinstance(value, str) and len(value) == 40 and all(c in _Z85_SET for c in value)


def valid_app_version(value: object) -> bool:
    """Whether an advert's app version has a version's form."""
    return isinstance(value, str) and _APP_VERSION_RE.fullmatch(value) is not None


def clean_name(value: str, limit: int = MAX_NAME_CHARS) -> str:
    """Drop control/format characters and surrounding blanks, cap the length."""
    kept = "".join(ch for ch in value if ch.isprintable())
    return kept.strip()[:limit]


def instance_label(name: str) -> str:
    """A DNS-label-safe version of a human name (for instance and host names)."""
    label = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-").lower()
    return label[:40] or "peer"


# ---------------------------------------------------------------- TXT wire format


def encode_txt(properties: dict[str, str]) -> bytes:
    """Encode ``key=value`` strings as DNS TXT rdata (length-prefixed strings)."""
    out = bytearray()
    for key, value in properties.items():
        item = f"{key}={value}".encode()
        if len(item) > 255:
            raise ValueError(f"TXT entry {key!r} too long")
        out.append(len(item))
        out += item
    if len(out) > MAX_TXT_BYTES:
        raise ValueError("TXT record too large")
    return bytes(out)


def parse_txt(raw: object) -> dict[str, str] | None:
    """Decode TXT rdata into ``{key: value}``; ``None`` when the record is unusable.

    Rules: total size <= MAX_TXT_BYTES, at most MAX_TXT_ENTRIES entries, each entry must
    be UTF-8 ``key=value`` with an ASCII key; entries without ``=`` or with empty keys are
    skipped; the first occurrence of a key wins (RFC 6763 section 6.4); a length byte that
    runs past the end makes the whole record invalid.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        return None
    data = bytes(raw)
    if len(data) > MAX_TXT_BYTES:
        return None
    props: dict[str, str] = {}
    pos = 0
    entries = 0
    while pos < len(data):
        length = data[pos]
        pos += 1
        if pos + length > len(data):
            return None  # truncated
        item = data[pos : pos + length]
        pos += length
        entries += 1
        if entries > MAX_TXT_ENTRIES:
            return None
        if not item:
            continue
        key_b, sep, value_b = item.partition(b"=")
        if not sep or not key_b:
            continue
        try:
            key = key_b.decode("ascii").lower()
            value = value_b.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if not key.isprintable():
            continue
        props.setdefault(key, value)
    return props


def _parse_int(value: str | None) -> int | None:
    if value is None or _INT_RE.fullmatch(value) is None:
        return None
    return int(value)


def _clean_addresses(addresses: object) -> tuple[str, ...]:
    out: list[str] = []
    if not isinstance(addresses, (list, tuple)):
        return ()
    for a in addresses[: MAX_ADDRESSES * 4]:
        try:
            ip = ipaddress.ip_address(str(a).split("%", 1)[0])
        except ValueError:
            continue
        if ip.is_unspecified or ip.is_multicast:
            continue
        text = str(ip)
        if text not in out:
            out.append(text)
        if len(out) >= MAX_ADDRESSES:
            break
    return tuple(out)


def instance_from_service_name(service_name: object) -> str | None:
    """``"lab-pc-a1b2c3._p2p-attendance._tcp.local."`` -> ``"lab-pc-a1b2c3"`` (validated)."""
    if not isinstance(service_name, str):
        return None
    suffix = "." + SERVICE_TYPE
    if not service_name.lower().endswith(suffix):
        return None
    instance = service_name[: -len(suffix)]
    if not instance or len(instance) > MAX_INSTANCE_CHARS or not instance.isprintable():
        return None
    return instance


def peer_from_properties(
    instance: str,
    props: dict[str, str] | None,
    addresses: object,
    port: object,
) -> PeerInfo | None:
    """Build a validated :class:`PeerInfo`, or ``None`` if anything required is bad.

    Unknown keys are ignored (forward compatibility). A peer in state ``requesting``
    must carry a valid port and job id; the server key is optional but, when present,
    must be valid Z85 of length 40.
    """
    try:
        if not isinstance(instance, str) or not instance or len(instance) > MAX_INSTANCE_CHARS:
            return None
        if not isinstance(props, dict):
            return None
        protocol_version = _parse_int(props.get("pv"))
        cores = _parse_int(props.get("cores"))
        state = props.get("st")
        app_version = props.get("av", "")
        if protocol_version is None or not valid_cores(cores) or not valid_state(state):
            return None
        if not valid_app_version(app_version):
            app_version = "?"
        # the one rule for peer text: an advert with a bad name is refused (ValueError below)
        name = check_peer_text(props.get("name", ""), MAX_NAME_CHARS, "advert name").strip() or instance
        port_value = port if valid_port(port) else None
        job_id = props.get("job") or None
        if job_id is not None and not valid_job_id(job_id):
            return None
        server_key = props.get("key") or None
        if server_key is not None and not valid_server_key(server_key):
            return None
        open_job = props.get("open", "0") == "1"
        class_name = check_peer_text(props.get("cls", ""), MAX_NAME_CHARS, "class")  # ValueError: dropped
        if state == "requesting":
            if port_value is None or job_id is None:
                return None
        else:
            # Only a requester hands out a port/job/key; ignore leftovers from others.
            port_value, job_id, server_key, open_job, class_name = None, None, None, False, ""
        addrs = _clean_addresses(addresses)
        if not addrs:
            return None
        return PeerInfo(
            instance=instance,
            name=name,
            state=state,
            cores=cores,
            app_version=app_version,
            protocol_version=protocol_version,
            addresses=addrs,
            port=port_value,
            job_id=job_id,
            server_key=server_key,
            open_job=open_job,
            class_name=class_name,
        )
    except Exception:  # noqa: BLE001 - untrusted input must never crash the directory
        return None


def build_properties(
    *,
    name: str,
    state: str,
    cores: int,
    app_version: str,
    protocol_version: int,
    job_id: str | None,
    server_key: str | None,
    open_job: bool,
    revision: int | None = None,
    class_name: str = "",
) -> dict[str, str]:
    """The TXT properties an :class:`~p2p_attendance.discovery.Advertiser` publishes.

    ``revision`` (TXT key ``rev``) counts the advertiser's updates. Readers ignore it;
    it only makes every update's TXT record and announcement packet unique (see
    ``Advertiser.update``).
    """
    props = {
        "pv": str(protocol_version),
        "av": app_version,
        "name": name,
        "st": state,
        "cores": str(cores),
    }
    if job_id:
        props["job"] = job_id
    if server_key:
        props["key"] = server_key
    props["open"] = "1" if open_job else "0"
    if class_name:
        props["cls"] = class_name
    if revision is not None:
        props["rev"] = str(revision)
    return props
