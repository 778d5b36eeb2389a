"""Every MongoDB collection a store declares is either rebuilt from the topics or kept."""

from __future__ import annotations

from mercato.rebuild import KEPT, READ_MODELS
from stores.mongo import indexed_modules


def test_every_indexed_collection_is_rebuilt_or_kept_with_a_reason() -> None:
    declared = {name for module in indexed_modules() for name in module.INDEXES}
    unclassified = declared - set(READ_MODELS) - set(KEPT)
    assert not unclassified, (
        f"{sorted(unclassified)}: add each to mercato.rebuild.READ_MODELS (a projection of "
        "topics) or to KEPT (with the reason a rebuild must not drop it)")
    assert not set(READ_MODELS) & set(KEPT)
    assert all(reason.strip() for reason in KEPT.values())
