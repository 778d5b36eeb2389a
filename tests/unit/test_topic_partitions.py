"""The partition count comes from the settings for every topic but a fixed one."""

from __future__ import annotations

import pytest

from config import ConfigError, Settings
from streams.schema import asyncapi_document
from streams.topics import CATALOGUE, partitions


def test_every_topic_but_the_dlq_takes_the_setting() -> None:
    for count in (4, 8, 48):
        settings = Settings(topic_partitions=count)
        counts = {spec.name: partitions(settings, spec.name) for spec in CATALOGUE}
        assert counts.pop("dlq") == 1
        assert set(counts.values()) == {count}


def test_the_default_is_four_and_the_variable_sets_it() -> None:
    assert Settings().topic_partitions == 4
    assert Settings.from_env({"MERCATO_TOPIC_PARTITIONS": "64"}).topic_partitions == 64
    with pytest.raises(ConfigError, match="MERCATO_TOPIC_PARTITIONS"):
        Settings.from_env({"MERCATO_TOPIC_PARTITIONS": "0"})


def test_an_unknown_topic_fails_loudly() -> None:
    with pytest.raises(KeyError, match="unknown topic"):
        partitions(Settings(), "order")


def test_the_asyncapi_document_gives_the_deployments_counts() -> None:
    channels = asyncapi_document(Settings(topic_partitions=12))["channels"]
    assert channels["orders"]["bindings"]["kafka"]["partitions"] == 12
    assert channels["dlq"]["bindings"]["kafka"]["partitions"] == 1
