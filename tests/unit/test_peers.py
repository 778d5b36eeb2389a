"""Which group members a worker evicts on the broker's behalf (agents.runtime.peers)."""

from __future__ import annotations

from agents.runtime.peers import PeerWatch

OWN = "app-worker-own"
PEER = "app-worker-peer"
SILENCE = 6.0


def test_a_peer_is_evicted_once_its_beat_stood_still_for_the_session_timeout() -> None:
    watch = PeerWatch(OWN, SILENCE)
    members = {"m-own": OWN, "m-peer": PEER}
    assert watch.to_evict(0.0, members, {PEER: 100}, "m-own") == []
    assert watch.to_evict(3.0, members, {PEER: 100}, "m-own") == []
    assert watch.to_evict(6.0, members, {PEER: 100}, "m-own") == ["m-peer"]


def test_a_beating_peer_is_never_evicted_however_long_it_runs() -> None:
    watch = PeerWatch(OWN, SILENCE)
    members = {"m-own": OWN, "m-peer": PEER}
    for second in range(30):
        assert watch.to_evict(float(second), members, {PEER: second}, "m-own") == []


def test_a_peer_that_never_beat_is_evicted_a_session_timeout_after_it_was_first_seen() -> None:
    watch = PeerWatch(OWN, SILENCE)
    assert watch.to_evict(10.0, {"m-peer": PEER}, {}, None) == []
    assert watch.to_evict(15.9, {"m-peer": PEER}, {}, None) == []
    assert watch.to_evict(16.0, {"m-peer": PEER}, {}, None) == ["m-peer"]


def test_a_failed_read_starts_every_watch_over() -> None:
    watch = PeerWatch(OWN, SILENCE)
    members = {"m-peer": PEER}
    watch.to_evict(0.0, members, {PEER: 1}, None)
    # Redis was unreachable from 1 s to 20 s: the peer's beats paused as ours did.
    watch.restart()
    assert watch.to_evict(20.0, members, {PEER: 1}, None) == []
    assert watch.to_evict(21.0, members, {PEER: 2}, None) == []


def test_an_old_member_id_of_this_run_is_evicted_when_seen_twice_beside_the_current_one() -> None:
    watch = PeerWatch(OWN, SILENCE)
    members = {"m-old": OWN, "m-new": OWN, "m-peer": PEER}
    assert watch.to_evict(0.0, members, {PEER: 1}, "m-new") == []
    assert watch.to_evict(1.0, members, {PEER: 2}, "m-new") == ["m-old"]


def test_no_member_of_this_run_is_evicted_while_its_current_id_is_unknown_or_not_listed() -> None:
    watch = PeerWatch(OWN, SILENCE)
    members = {"m-old": OWN, "m-new": OWN}
    for second in range(10):
        assert watch.to_evict(float(second), members, {}, None) == []
    # Read just before the consumer took its new id: the id read then is the old one, and
    # the next round reads the new one, so no pair is seen twice.
    assert watch.to_evict(20.0, members, {}, "m-old") == []
    assert watch.to_evict(21.0, members, {}, "m-new") == []
    assert watch.to_evict(22.0, {"m-new": OWN}, {}, "m-gone") == []
