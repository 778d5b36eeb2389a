"""Command specs: every command a gateway waits on has a topic, a record key and its refusals.

``CommandBus.ask`` takes only a ``Command`` (mypy holds every call site to that), so
walking the ``Command`` models walks everything the gateway can wait on.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from streams.commands import CATALOG, NOTIFICATIONS
from streams.errors import Conflict, MercatoError, NotFound
from streams.events.audit import LoginFailed
from streams.events.files import FileDownloaded
from streams.events.notifications import MessageRequested
from streams.events.products import ProductCreated
from streams.events.users import RegistrationRequested
from streams.registry import (
    Command,
    Payload,
    answered_models,
    command_spec,
    event,
    spec_for_model,
)
from streams.topics import BY_NAME
from tests.support.samples import payloads

COMMANDS = sorted(answered_models(), key=lambda model: model.__name__)
# What the gateway publishes without waiting: keyed from the registration all the same.
PUBLISHED: list[type[BaseModel]] = [LoginFailed, MessageRequested, FileDownloaded]


@pytest.mark.parametrize("model", [*COMMANDS, *PUBLISHED], ids=lambda model: model.__name__)
@given(data=st.data())
def test_each_command_names_a_catalogued_topic_and_a_key_of_its_own(
    model: type[BaseModel], data: st.DataObject
) -> None:
    payload = data.draw(payloads(model))
    assert isinstance(payload, Payload)
    assert spec_for_model(model).topic in BY_NAME
    assert isinstance(payload.record_key(), str)


def test_a_documented_key_field_is_what_the_record_is_keyed_by() -> None:
    registration = RegistrationRequested.model_validate({
        "userId": "u1", "email": "Ada@Example.com", "emailNormalized": "ada@example.com",
        "name": "Ada", "roles": ["buyer"], "passwordHash": "h",
        "deadline": "2030-01-01T00:00:00Z", "replyTo": "g1",
    })
    assert registration.record_key() == "ada@example.com"
    anonymous = LoginFailed(actor_id=None, email_masked="a***@x", email_fingerprint="f")
    assert anonymous.record_key() == "anonymous"


def _leaves(model: type[Command]) -> list[type[Command]]:
    below = model.__subclasses__()
    return [leaf for sub in below for leaf in _leaves(sub)] if below else [model]


def test_every_command_model_is_registered_with_its_answers() -> None:
    answered = answered_models()
    # Events live in streams/; the unregistrable models the tests below define do not count.
    leaves = [model for model in _leaves(Command) if model.__module__.startswith("streams.")]
    assert sorted(leaves, key=lambda model: model.__name__) == COMMANDS
    for model in leaves:
        assert spec_for_model(model).answers is answered[model]


def test_a_command_without_answers_is_refused_at_registration() -> None:
    class Unanswered(Command):
        thing_id: str

    with pytest.raises(TypeError, match="declares answers"):
        event("test.unanswered", topic="product-commands", key="thingId",
              summary="never registered")(Unanswered)
    with pytest.raises(KeyError):
        spec_for_model(Unanswered)


def test_only_a_command_declares_answers() -> None:
    class Fact(Payload):
        thing_id: str

    with pytest.raises(TypeError, match="only a Command"):
        event("test.fact", topic="product-commands", key="thingId",
              summary="never registered", answers=CATALOG)(Fact)


def test_an_event_nobody_sends_as_a_command_has_no_spec() -> None:
    with pytest.raises(KeyError, match="not a command"):
        command_spec(ProductCreated)


def test_a_rejection_becomes_its_domain_error_with_the_agents_code_and_detail() -> None:
    error = CATALOG.error("PRODUCT_ARCHIVED", "the product is archived")
    assert type(error) is Conflict
    assert (error.code, error.detail) == ("PRODUCT_ARCHIVED", "the product is archived")
    missing = NOTIFICATIONS.error("NOT_FOUND", None)
    assert type(missing) is NotFound
    assert missing.detail == "no such notification"


def test_a_code_outside_the_table_stays_a_plain_failure() -> None:
    error = CATALOG.error("SOMETHING_NEW", None)
    assert type(error) is MercatoError
    assert (error.code, error.detail) == ("SOMETHING_NEW", "the catalog refused the change")
