"""LAN discovery of other running copies of the app via mDNS / DNS-SD (python-zeroconf).

Headless (no Qt); nothing runs at import time. See docs/discovery.md.
"""

from .background import BackgroundAdvertiser
from .mdns import (
    DEFAULT_EXPIRE_AFTER,
    DEFAULT_REFRESH_AFTER,
    DEFAULT_TTL,
    Advertiser,
    PeerDirectory,
    default_name,
)
from .netaddr import MDNS_INTERFACES_ENV, choose_lan_address, resolve_interfaces
from .peers_cli import peers_command
from .records import (
    SERVICE_TYPE,
    STATES,
    PeerInfo,
    encode_txt,
    parse_txt,
    peer_from_properties,
)

__all__ = [
    "DEFAULT_EXPIRE_AFTER",
    "DEFAULT_REFRESH_AFTER",
    "DEFAULT_TTL",
    "MDNS_INTERFACES_ENV",
    "SERVICE_TYPE",
    "STATES",
    "Advertiser",
    "BackgroundAdvertiser",
    "PeerDirectory",
    "PeerInfo",
    "choose_lan_address",
    "default_name",
    "encode_txt",
    "parse_txt",
    "peer_from_properties",
    "peers_command",
    "resolve_interfaces",
]
