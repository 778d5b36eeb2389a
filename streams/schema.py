"""JSON Schema (2020-12) and AsyncAPI 3 documents generated from the event registry."""

from __future__ import annotations

from typing import Any

from config import Settings
from streams.registry import EventSpec, all_specs
from streams.topics import CATALOGUE, partitions

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_id(spec: EventSpec) -> str:
    """Stable identifier of an event schema, e.g. ``user.registered.v1``."""
    return f"{spec.type}.v{spec.version}"


def event_schema(spec: EventSpec) -> dict[str, Any]:
    """The JSON Schema of a whole record value (envelope + this type's ``data``)."""
    data = spec.model.model_json_schema(by_alias=True, mode="serialization")
    defs = data.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:mercato:event:{schema_id(spec)}",
        "title": f"{spec.type} v{spec.version}",
        "description": spec.summary,
        "type": "object",
        "required": [
            "id",
            "type",
            "version",
            "key",
            "occurredAt",
            "source",
            "correlationId",
            "data",
        ],
        "properties": {
            "id": {"type": "string", "description": "Unique event id; consumers dedupe on it."},
            "type": {"const": spec.type},
            "version": {"const": spec.version},
            "key": {"type": "string", "description": f"Record key: {spec.key}."},
            "occurredAt": {"type": "string", "format": "date-time"},
            "source": {"type": "string"},
            "correlationId": {"type": "string"},
            "causationId": {"type": ["string", "null"]},
            "data": data,
        },
    }
    if defs:
        schema["$defs"] = defs
    # pydantic's refs ("#/$defs/X") stay valid: $defs moved to this document's root.
    return schema


def _rebase_refs(node: Any, base: str) -> Any:
    """Point ``#/$defs/...`` refs at ``base`` (where the schema is embedded in another document)."""
    if isinstance(node, dict):
        return {
            k: (base + v[1:] if k == "$ref" and isinstance(v, str) and v.startswith("#/") else
                _rebase_refs(v, base))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase_refs(v, base) for v in node]
    return node


def asyncapi_document(
    settings: Settings | None = None, *, servers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """AsyncAPI 3.0 description of every topic and event, internal ones marked ``x-internal``.

    ``settings`` give the topics' prefix and partitions (the defaults when omitted).
    """
    settings = settings or Settings()
    prefix = settings.topic_prefix
    specs = list(all_specs())
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for topic in CATALOGUE:
        topic_events = [s for s in specs if s.topic == topic.name]
        channel_messages = {}
        for spec in topic_events:
            name = schema_id(spec).replace(".", "_")
            schemas[name] = _rebase_refs(event_schema(spec), f"#/components/schemas/{name}")
            messages[name] = {
                "name": spec.type,
                "title": f"{spec.type} v{spec.version}",
                "summary": spec.summary,
                "contentType": "application/json",
                "payload": {"$ref": f"#/components/schemas/{name}"},
                "headers": _CE_HEADERS,
                "bindings": {"kafka": {"key": {"type": "string", "description": spec.key}}},
            }
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        channels[topic.name] = {
            "address": f"{prefix}{topic.name}",
            "description": topic.description,
            "x-internal": topic.internal,
            "messages": channel_messages,
            "bindings": {
                "kafka": {
                    "partitions": partitions(settings, topic.name),
                    "topicConfiguration": {
                        "cleanup.policy": ["compact" if topic.compacted else "delete"],
                        "retention.ms": topic.retention_ms,
                    },
                }
            },
        }
        operations[f"publish_{topic.name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{topic.name}"},
            "summary": f"Mercato publishes to {prefix}{topic.name}.",
            "x-internal": topic.internal,
            "messages": [
                {"$ref": f"#/channels/{topic.name}/messages/{m}"} for m in channel_messages
            ],
        }
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Mercato events",
            "version": "1.0.0",
            "description": (
                "Every record value is a JSON envelope; the record key is the aggregate id. "
                "Channels marked x-internal carry secrets or plumbing and are not a contract "
                "for data teams. A breaking change to a payload bumps its version."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
    if servers:
        document["servers"] = servers
    return document


_CE_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents Kafka protocol binding (binary mode) headers.",
    "properties": {
        "ce_id": {"type": "string"},
        "ce_type": {"type": "string"},
        "ce_source": {"type": "string"},
        "ce_specversion": {"const": "1.0"},
        "ce_time": {"type": "string", "format": "date-time"},
    },
}
