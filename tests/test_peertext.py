import pytest

from p2p_attendance.peertext import check_peer_text, displayable
from p2p_attendance.swarm import protocol as proto


@pytest.mark.parametrize(
    "text",
    [
        "laptop\x1b[2J\x1b[31mJoin code: 123456",  # terminal escape sequence
        "laptop\nJoin code: 123456",  # a forged log line
        "bad\ud800name",  # lone surrogate: cannot be written as UTF-8
        "evil\u202egnp.exe",  # bidi override
        "a\u2028b",  # line separator
    ],
)
def test_peer_text_refuses_what_can_forge_or_crash(text):
    with pytest.raises(ValueError):
        check_peer_text(text, 100)
    hello = {"name": text, "cores": 2, "app_version": "1"}
    with pytest.raises(proto.ProtocolError):
        proto.decode([proto.json.dumps({"v": proto.PROTOCOL_VERSION, "type": "HELLO", **hello}).encode()])


def test_peer_text_keeps_real_names():
    for name in ("Zoë's ThinkPad (Linux)", "李明的电脑", "कंप्यूटर", "Ali\u200cReza"):
        assert check_peer_text(name, 100) == name
    with pytest.raises(ValueError):
        check_peer_text("x" * 101, 100)


def test_displayable_makes_own_text_follow_the_rule():
    assert displayable("host\x1b[1m\ud800", 10) == "host?[1m?"
    check_peer_text(displayable("host\x1b[1m\ud800", 10), 10)
