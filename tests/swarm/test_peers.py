"""Peer records (swarm/peers.py): a peer is a machine, not a connection."""
from p2p_attendance.swarm.peers import TRUSTED_MACHINE, PeerRecord, PeerState, machine_key


def test_a_peer_is_its_machine_by_address_on_a_lan_and_by_name_on_loopback():
    assert machine_key("a", "10.0.0.5") == machine_key("b", "10.0.0.5")  # two connections, one laptop
    assert machine_key("a", "127.0.0.1") != machine_key("b", "127.0.0.1")  # tests: one process per name
    assert PeerRecord("this computer", "127.0.0.1", 1).machine != PeerRecord("this computer", "127.0.0.1", 1, trusted=True).machine
    assert PeerRecord("x", "127.0.0.1", 1, trusted=True).machine == TRUSTED_MACHINE


def test_states_are_an_enum_that_travels_as_text():
    peer = PeerRecord("a", "10.0.0.5", 2)
    assert peer.active and peer.state == "joined"
    for state in (PeerState.LEFT, PeerState.LOST, PeerState.QUARANTINED, PeerState.DONE):
        peer.state = state
        assert not peer.active
    snap = peer.snapshot("id", 0.0)
    assert snap["state"] == "done" and type(snap["state"]) is str
