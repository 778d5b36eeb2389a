"""Generated event schemas: valid 2020-12, satisfied by real envelopes, secrets kept internal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from config import Settings
from streams.envelope import new_event
from streams.events.ops import DeadLettered
from streams.registry import EventSpec, all_specs, spec_for
from streams.schema import asyncapi_document, event_schema
from streams.topics import CATALOGUE
from tests.support.samples import MOMENTS, payloads

SPECS = list(all_specs())
SECRET_WORDS = ("password", "hash", "token", "secret")

text = st.text(max_size=20)
ids = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=36)
moments = MOMENTS
roles = st.lists(st.sampled_from(["buyer", "seller", "admin"]), min_size=1, max_size=3)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)

# One strategy per registered payload; a new event type must add its sample here.


def _walk_property_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            yield from props
        for value in node.values():
            yield from _walk_property_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_property_names(value)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _validator(spec: EventSpec) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(event_schema(spec))


def _samples(model: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    """Valid payloads of ``model``, derived from its fields (tests/support/samples.py)."""
    return payloads(model)


def test_the_catalogue_is_registered_and_every_event_has_a_sample() -> None:
    assert {s.type for s in SPECS} >= {
        "registration.requested",
        "user.registered",
        "command.answered",
        "command.expired",
        "event.dead_lettered",
    }
    for spec in SPECS:
        assert isinstance(_samples(spec.model), st.SearchStrategy)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.type}.v{s.version}")
def test_event_schema_is_valid_2020_12(spec: EventSpec) -> None:
    schema = event_schema(spec)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:mercato:event:{spec.type}.v{spec.version}"
    assert schema["properties"]["type"] == {"const": spec.type}
    assert schema["properties"]["version"] == {"const": spec.version}
    for ref in _refs(schema):
        _resolve(schema, ref)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.type}.v{s.version}")
def test_real_envelopes_validate_against_their_schema(spec: EventSpec) -> None:
    validator = _validator(spec)

    @settings(max_examples=40, deadline=None)
    @given(_samples(spec.model))
    def check(payload: BaseModel) -> None:
        envelope = new_event(payload, key="k", source="tests", causation_id="c")
        value = envelope.to_dict()
        errors = [e.message for e in validator.iter_errors(value)]
        assert errors == []
        # What producers write, consumers can read back as the same model.
        assert envelope.payload(spec.model) == payload

    check()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.type}.v{s.version}")
def test_wrong_type_or_version_fails_validation(spec: EventSpec) -> None:
    validator = _validator(spec)

    @settings(max_examples=10, deadline=None)
    @given(_samples(spec.model), st.sampled_from([s.type for s in SPECS if s.type != spec.type]))
    def check(payload: BaseModel, other_type: str) -> None:
        value = new_event(payload, key="k", source="tests").to_dict()
        assert validator.is_valid(value)
        assert not validator.is_valid({**value, "type": other_type})
        assert not validator.is_valid({**value, "version": spec.version + 1})
        assert not validator.is_valid({k: v for k, v in value.items() if k != "data"})

    check()


def test_dead_letter_of_a_keyless_record_matches_its_schema() -> None:
    spec = spec_for("event.dead_lettered", 1)
    assert spec is not None
    letter = DeadLettered(
        agent="a", topic="t", partition=0, offset=1, key=None, value="v", error="e", attempts=1
    )
    envelope = new_event(letter, key="t:0:1", source="tests")
    assert _validator(spec).is_valid(envelope.to_dict())
    assert envelope.payload(DeadLettered) == letter


def test_asyncapi_document_describes_every_topic() -> None:
    doc = asyncapi_document(Settings(topic_prefix="u."))
    assert doc["asyncapi"] == "3.0.0"
    assert set(doc["channels"]) == {t.name for t in CATALOGUE}
    for topic in CATALOGUE:
        channel = doc["channels"][topic.name]
        assert channel["address"] == f"u.{topic.name}"
        assert channel["x-internal"] is topic.internal
        assert doc["operations"][f"publish_{topic.name}"]["x-internal"] is topic.internal
    internal = {name for name, ch in doc["channels"].items() if ch["x-internal"]}
    # Topics that carry secrets or plumbing must stay internal, whatever else is added.
    assert internal >= {
        "registrations", "replies", "dlq", "payment-commands", "user-commands", "outbox"
    }


def test_asyncapi_lists_each_event_on_its_topic_and_refs_resolve() -> None:
    doc = asyncapi_document()
    for spec in SPECS:
        name = f"{spec.type}.v{spec.version}".replace(".", "_")
        assert name in doc["channels"][spec.topic]["messages"]
        # Embedded copies point their refs into the AsyncAPI document; otherwise identical.
        embedded = orjson.dumps(doc["components"]["schemas"][name]).decode()
        rebased = embedded.replace(f"#/components/schemas/{name}/", "#/")
        assert orjson.loads(rebased) == event_schema(spec)
    refs = list(_refs(doc))
    assert refs
    for ref in refs:
        _resolve(doc, ref)
    assert "servers" not in doc
    assert asyncapi_document(servers={"dev": {"host": "x"}})["servers"] == {"dev": {"host": "x"}}


PUBLIC_SPECS = [s for s in SPECS if not s.internal]


@pytest.mark.parametrize("spec", PUBLIC_SPECS, ids=lambda s: f"{s.type}.v{s.version}")
def test_secret_check_no_public_event_carries_credentials(spec: EventSpec) -> None:
    names = [n.lower() for n in _walk_property_names(event_schema(spec))]
    leaked = [n for n in names if any(word in n for word in SECRET_WORDS)]
    assert leaked == [], f"{spec.type} on public topic {spec.topic} exposes {leaked}"


def test_secret_check_walker_would_catch_a_leak() -> None:
    # Guards the guard: the internal command does carry a hash, and the walker sees it.
    spec = spec_for("registration.requested", 1)
    assert spec is not None
    assert "passwordHash" in list(_walk_property_names(event_schema(spec)))


def test_registration_requested_stays_on_an_internal_topic() -> None:
    spec = spec_for("registration.requested", 1)
    assert spec is not None
    assert spec.topic == "registrations"
    assert spec.internal


def test_public_events_exist_so_the_secret_check_is_not_vacuous() -> None:
    assert {s.type for s in PUBLIC_SPECS} >= {"user.registered", "command.expired"}
