"""The ids of the events a read-model document has applied, a bounded window of the newest.

A document guarded by event id (``{"events": {"$ne": id}}``) must not keep every id it
ever applied: a group changed or a grant toggled for years would grow past MongoDB's
16 MB document limit and every later write to it would fail. The window suffices
because a document's events share a record key (a group's owner, a grant's file), so
one agent applies them in order, one at a time, and a redelivery repeats only records
after the partition's last committed offset: at most ``broker_commit_every`` (100,
``agents.app``) acked records, plus those in flight, even if every one of them touched
this document. An older id is never redelivered, so forgetting it is safe.
"""

from __future__ import annotations

from typing import Any

EVENT_WINDOW = 256  # ids of ~40 bytes: about 10 KB per document at most


def push_applied(event_id: str) -> dict[str, Any]:
    """The ``$push`` recording ``event_id``, dropping ids beyond the newest ``EVENT_WINDOW``."""
    return {"events": {"$each": [event_id], "$slice": -EVENT_WINDOW}}
