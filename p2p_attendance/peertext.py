"""The one rule for text that came from another computer (a volunteer's name, a requester's class
or reason, an mDNS advert's fields): valid Unicode, printable, bounded.

Such text reaches terminals, log files, reports and widgets. A control character can forge a
log line or rewrite a terminal; a lone surrogate cannot be written as UTF-8 (a report writer
crashed on one); a bidi override makes "evil.exe" read as something else. Text that breaks the
rule is refused where it enters (ValueError); `displayable()` makes our own text (a host name)
fit the same rule instead of refusing it.
"""
from __future__ import annotations

import unicodedata

# Zero-width (non-)joiners are needed to spell words in several scripts; every other format
# character (bidi overrides and isolates, invisible separators) only hides what text says.
_ALLOWED_FORMAT = {"\u200c", "\u200d"}
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _bad_char(ch: str) -> bool:
    return unicodedata.category(ch) in _REFUSED_CATEGORIES and ch not in _ALLOWED_FORMAT


def check_peer_text(value: object, limit: int, what: str = "text") -> str:
    """`value` unchanged when it follows the rule; ValueError naming `what` otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"{what} is not text")
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode") from None
    if any(_bad_char(ch) for ch in value):
        raise ValueError(f"{what} contains control or invisible characters")
    return value


def displayable(value: str, limit: int) -> str:
    """Our own text made to follow the rule: bad characters become '?', long text is cut."""
    value = value.encode("utf-8", "replace").decode("utf-8")
    return "".join("?" if _bad_char(ch) else ch for ch in value)[:limit]
