"""Presence bookkeeping: distinct viewers per channel, and changes coalesced between ticks."""

from __future__ import annotations

from gateway.push.presence import PresenceTracker
from stores.presence import ALL

P1, P2 = "product:p1", "product:p2"


def test_distinct_viewers_not_connections() -> None:
    tracker = PresenceTracker()
    tracker.join(P1, "alice")
    tracker.join(P1, "alice")  # a second tab
    tracker.join(P1, "bob")
    assert tracker.take() == {P1: 2, ALL: 2}
    tracker.leave(P1, "alice")  # one of her two tabs: she still views it
    assert tracker.take() == {}
    tracker.leave(P1, "alice")
    assert tracker.take() == {P1: 1, ALL: 1}


def test_a_reconnect_between_two_ticks_changes_nothing() -> None:
    tracker = PresenceTracker()
    for viewer in ("alice", "bob", "carol"):
        tracker.join(P1, viewer)
    assert tracker.take() == {P1: 3, ALL: 3}
    # Every client drops and comes back within the second: nothing to write or push.
    for viewer in ("alice", "bob", "carol"):
        tracker.leave(P1, viewer)
    for viewer in ("carol", "bob", "alice"):
        tracker.join(P1, viewer)
    assert tracker.take() == {}


def test_many_changes_between_ticks_are_one_count() -> None:
    tracker = PresenceTracker()
    for n in range(1000):
        tracker.join(P1, f"u{n}")
    for n in range(0, 1000, 2):
        tracker.leave(P1, f"u{n}")
    assert tracker.take() == {P1: 500, ALL: 500}


def test_a_channel_nobody_views_any_more_is_taken_as_zero_once() -> None:
    tracker = PresenceTracker()
    tracker.join(P1, "alice")
    tracker.take()
    tracker.leave(P1, "alice")
    assert tracker.take() == {P1: 0, ALL: 0}
    assert tracker.take() == {}
    assert tracker.counts() == {}


def test_all_counts_viewers_of_any_channel_once() -> None:
    tracker = PresenceTracker()
    tracker.join(P1, "alice")
    tracker.join(P2, "alice")
    tracker.join(P2, "bob")
    assert tracker.take() == {P1: 1, P2: 2, ALL: 2}
    tracker.leave(P1, "alice")  # she still views P2
    assert tracker.take() == {P1: 0}
    assert tracker.count(ALL) == 2


def test_leaving_what_was_never_joined_is_ignored() -> None:
    tracker = PresenceTracker()
    tracker.leave(P1, "alice")
    tracker.join(P1, "bob")
    tracker.leave(P1, "alice")
    assert tracker.take() == {P1: 1, ALL: 1}


def test_counts_are_every_nonzero_count_and_leave_nothing_to_take() -> None:
    tracker = PresenceTracker()
    tracker.join(P1, "alice")
    tracker.join(P2, "bob")
    assert tracker.counts() == {P1: 1, P2: 1, ALL: 2}
    assert tracker.take() == {}
