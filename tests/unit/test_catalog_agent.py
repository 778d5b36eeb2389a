"""The catalog agent: decisions, If-Match, ownership, reviews, idempotent redelivery, wiring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest

from agents.app import create_worker_app
from agents.catalog.decider import CatalogDecider
from agents.catalog.reviews import ReviewDecider
from config import Settings
from stores.products import Product, ProductRepository, etag, product
from stores.reviews import Review, ReviewRepository
from stores.suggestions import SuggestionRepository
from streams.envelope import Envelope, derived_id, new_event
from streams.events.commands import CommandAnswered
from streams.events.inventory import AdjustRequested
from streams.events.products import (
    ProductCommand,
    ProductCreateRequested,
    ProductUpdateRequested,
    ReviewSubmitRequested,
)
from tests.support.recording import RecordingEffects, close_unstarted_consumer_loop

NOW = datetime(2024, 5, 17, 12, 0, 0, 250000, tzinfo=UTC)


class FakeProducts(ProductRepository):
    """In-memory products read model with the real version guard."""

    def __init__(self) -> None:  # no database: deliberately not calling super().__init__
        self.docs: dict[str, dict[str, Any]] = {}
        self.writes = 0

    async def project(self, facts: dict[str, Any]) -> bool:
        doc = self.docs.get(facts["productId"])
        if doc is not None and doc["version"] >= facts["version"]:
            return False
        self.writes += 1
        self.docs[facts["productId"]] = {
            **facts, "_id": facts["productId"],
            "createdAt": datetime.fromisoformat(facts["createdAt"]),
            "updatedAt": datetime.fromisoformat(facts["updatedAt"]),
            "stock": 0, "rating": {"average": 0.0, "count": 0},
        }
        return True

    async def apply_rating(self, product_id: str, *, average: float, count: int) -> bool:
        rating = self.docs[product_id]["rating"]
        if rating["count"] >= count:
            return False
        self.docs[product_id]["rating"] = {"average": average, "count": count}
        return True

    async def get(self, product_id: str) -> Product | None:
        doc = self.docs.get(product_id)
        return None if doc is None else product(doc)


class FakeReviews(ReviewRepository):
    """In-memory reviews read model."""

    def __init__(self) -> None:  # no database
        self.reviews: dict[str, Review] = {}

    async def project(self, review: Review) -> bool:
        return self.reviews.setdefault(review.review_id, review) is review


class FakeSuggestions:
    """Remembers each product the agent (re-)indexed for suggestions, as it was then."""

    def __init__(self) -> None:
        self.indexed: list[Product] = []

    async def index(self, product: Product) -> None:
        self.indexed.append(product)


class CatalogEffects(RecordingEffects):
    """The recording effects over in-memory products and reviews, answers read back as pairs."""

    def __init__(self) -> None:
        super().__init__(repos={ProductRepository: FakeProducts(), ReviewRepository: FakeReviews(),
                                SuggestionRepository: FakeSuggestions()})

    @property
    def products(self) -> FakeProducts:
        return cast(FakeProducts, self.repos[ProductRepository.__name__])

    def answers(self) -> list[tuple[str, str | None]]:
        return [(a.outcome, a.code) for a in
                (e.payload(CommandAnswered) for e in self.on("replies"))]


def common(actor: str = "s1", *, admin: bool = False) -> dict[str, Any]:
    return {"product_id": "p1", "actor_id": actor, "actor_is_admin": admin,
            "deadline": NOW + timedelta(seconds=5), "reply_to": "gw"}


def raw(payload: ProductCommand) -> bytes:
    return new_event(payload, key=payload.product_id, source="gateway/gw").encode()


def create(stock: int = 3) -> bytes:
    return raw(ProductCreateRequested(
        seller_id="s1", name="Lamp", description="warm light", category="Lighting",
        price=Decimal("12.50"), currency="USD", initial_stock=stock, **common(),
    ))


def update(if_match: list[str], actor: str = "s1", *, admin: bool = False, **change: Any) -> bytes:
    return raw(ProductUpdateRequested(if_match=if_match, **change, **common(actor, admin=admin)))


@pytest.fixture
def effects() -> CatalogEffects:
    return CatalogEffects()


@pytest.fixture
def decider(effects: CatalogEffects) -> CatalogDecider:
    products: dict[str, Any] = {}
    return CatalogDecider(products, effects, ReviewDecider({}, products, effects))


async def test_create_projects_emits_and_asks_inventory_for_the_initial_stock(
    decider: CatalogDecider, effects: CatalogEffects
) -> None:
    command = create(stock=3)
    assert await decider.handle(command, now=NOW) == "created"
    assert effects.products.docs["p1"]["version"] == 1
    [created] = effects.on("products")
    assert created.type == "product.created"
    assert created.data["price"] == "12.50"
    [adjust] = [e.payload(AdjustRequested) for e in effects.on("inventory-commands")]
    assert (adjust.quantity_change, adjust.requested_by, adjust.reply_to) == (3, "s1", "")
    [answer] = [e.payload(CommandAnswered) for e in effects.on("replies")]
    assert answer.result["stock"] == 3
    assert answer.result["version"] == 1


async def test_redelivered_commands_change_nothing_twice(
    decider: CatalogDecider, effects: CatalogEffects
) -> None:
    first = create()
    await decider.handle(first, now=NOW)
    change = update([etag("p1", 1)], price=Decimal("15.00"))
    assert await decider.handle(change, now=NOW + timedelta(seconds=1)) == "updated"
    # Both redelivered, late, in order: same decisions, same event ids, no new version.
    assert await decider.handle(first, now=NOW + timedelta(minutes=5)) == "created"
    assert await decider.handle(change, now=NOW + timedelta(minutes=5)) == "updated"

    assert effects.products.writes == 2
    assert effects.products.docs["p1"]["version"] == 2
    events = effects.on("products")
    assert [e.type for e in events] == [
        "product.created", "product.updated", "product.created", "product.updated"]
    assert events[0] == events[2]
    assert events[1] == events[3]
    assert events[1].id == derived_id(Envelope.decode(change).id, "product.updated")
    adjusts = effects.on("inventory-commands")
    assert len(adjusts) == 2
    assert adjusts[0].id == adjusts[1].id
    assert effects.answers() == [("accepted", None)] * 4


async def test_if_match_is_checked_against_the_agents_own_version(
    decider: CatalogDecider, effects: CatalogEffects
) -> None:
    await decider.handle(create(), now=NOW)
    await decider.handle(update([etag("p1", 1)], name="Lamp 2"), now=NOW)
    assert await decider.handle(update([etag("p1", 1)], name="Lamp 3"), now=NOW) == "rejected"
    assert await decider.handle(update(["*"], name="Lamp 4"), now=NOW) == "updated"
    assert effects.answers()[-2:] == [("rejected", "PRECONDITION_FAILED"), ("accepted", None)]
    assert effects.products.docs["p1"]["name"] == "Lamp 4"


async def test_only_the_seller_or_an_admin_may_change_a_product(
    decider: CatalogDecider, effects: CatalogEffects
) -> None:
    await decider.handle(create(), now=NOW)
    assert await decider.handle(update(["*"], "s2", name="Mine"), now=NOW) == "rejected"
    assert await decider.handle(update(["*"], "a1", admin=True, name="Ok"), now=NOW) == "updated"
    assert effects.answers()[1:] == [("rejected", "FORBIDDEN"), ("accepted", None)]
    [pushed] = effects.pushed
    assert pushed[0] == "product:p1"
    assert pushed[1].data["changed"] == ["name"]


async def test_one_review_per_buyer_and_the_rating_follows(
    decider: CatalogDecider, effects: CatalogEffects
) -> None:
    await decider.handle(create(), now=NOW)

    def review(buyer: str, stars: int) -> bytes:
        return raw(ReviewSubmitRequested(
            review_id=f"r-{buyer}", rating=stars, comment="ok", **common(buyer)))

    first = review("b1", 5)
    assert await decider.handle(first, now=NOW) == "reviewed"
    assert await decider.handle(review("b1", 1), now=NOW) == "rejected"
    assert await decider.handle(review("b2", 2), now=NOW) == "reviewed"
    assert await decider.handle(first, now=NOW) == "reviewed"  # redelivery: same answer
    assert effects.products.docs["p1"]["rating"] == {"average": 3.5, "count": 2}
    assert effects.answers()[1:] == [
        ("accepted", None), ("rejected", "REVIEW_EXISTS"), ("accepted", None), ("accepted", None)]
    assert [e.type for e in effects.on("products")][1:] == ["review.created"] * 3


async def test_faust_agent_wiring(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="x" * 48, topic_prefix="u.")
    effects = CatalogEffects()
    worker = create_worker_app(settings, store="memory://", effects=effects)
    command = raw(ProductCreateRequested(
        seller_id="s1", name="Lamp", description="", category="Lighting",
        price=Decimal("1.00"), currency="USD",
        **{**common(), "deadline": datetime.now(UTC) + timedelta(minutes=5)},
    ))
    try:
        async with worker.agents["catalog"].test_context() as agent:
            await agent.put(key=b"p1", value=command)
            await agent.put(key=b"p1", value=command)  # redelivery
    finally:
        close_unstarted_consumer_loop(worker.app)
    assert effects.products.writes == 1
    created = effects.on("products")
    assert len(created) == 2
    assert created[0] == created[1]
    assert effects.on("inventory-commands") == []  # no initial stock, nothing to ask
