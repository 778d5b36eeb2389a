"""Every response a test client receives, held to what the app's own ``/openapi.json`` declares.

``ResponseContract`` is an aiohttp client middleware: the operation is matched by method and
path template, the status must be declared (exactly, by a ``2XX`` range or by ``default``),
the content type must be one declared for that status, and a JSON body must validate
against the declared schema (OpenAPI 3.1 schemas are JSON Schema 2020-12; ``$ref``s resolve
against the document). The document's objects are held closed here: a field a response
carries and its model does not list is the drift between a handler and its description that
this check exists to catch (JSON Schema alone would let it through). Streams and downloads
are held to status and content type only: their bodies are never read here. A mismatch
raises ``AssertionError`` naming the operation, the status and the schema error's path, so
the test that received it fails.

Opting out is explicit and local: ``with unchecked("why"):`` around the requests that send
deliberately undeclared things (raw paths, methods no operation has).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_PATH = "/openapi.json"
_DOCUMENT_URI = "urn:mercato:openapi"
# Routes the document leaves out by design, with the content types each may answer: the
# description itself, the probes, and the stream upgrades, which are not request/response
# operations (a WebSocket's 101 carries no body). A route missing here and from the document
# fails every test that calls it, so a new one is either declared or listed on purpose.
OUTSIDE_DOCUMENT: Mapping[str, frozenset[str]] = {
    DOCUMENT_PATH: frozenset({"application/json"}),
    "/health/live": frozenset({"application/json"}),
    "/health/ready": frozenset({"application/json"}),
    "/v1/events": frozenset({"text/event-stream", "application/problem+json"}),
    "/v1/ws": frozenset({"application/problem+json"}),
}
# What the response's media type must be for its body to be read and validated; anything
# else (SSE, CSV, file bytes) may be a stream and is held to its content type only.
_JSON_MEDIA = re.compile(r"^application/([\w.+-]+\+)?json$")
_PARAM = re.compile(r"\{[^}/]+\}")
_OPENNESS = frozenset({"additionalProperties", "unevaluatedProperties"})
_SKIPPED: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mercato_response_contract_skipped", default=None
)


@contextlib.contextmanager
def unchecked(reason: str) -> Iterator[None]:
    """Leave the responses received inside this block unchecked; ``reason`` says why."""
    if not reason.strip():
        raise ValueError("say why these responses are left unchecked")
    token = _SKIPPED.set(reason)
    try:
        yield
    finally:
        _SKIPPED.reset(token)


@dataclasses.dataclass(frozen=True, slots=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    methods: Mapping[str, Any]


class ResponseContract:
    """A client middleware checking each response against an OpenAPI document."""

    def __init__(self) -> None:
        self._routes: list[_Route] | None = None
        self._registry: Registry[Any] = Registry()
        self._validators: dict[tuple[str, ...], Any] = {}

    def load(self, document: Mapping[str, Any]) -> None:
        """Check every later response against ``document`` (an OpenAPI 3.1 description)."""
        document = _closed(document)
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(_DOCUMENT_URI, resource)
        self._validators.clear()
        routes = [
            _Route(template, _compile(template), methods)
            for template, methods in document.get("paths", {}).items()
        ]
        # A literal segment wins over a parameter: /v1/users/me before /v1/users/{id}.
        routes.sort(key=lambda r: (len(_PARAM.findall(r.template)), -len(r.template)))
        self._routes = routes

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Send ``request``; the response is returned only if the document allows it."""
        response = await handler(request)
        if _SKIPPED.get() is not None:
            return response
        try:
            await self.check(request.method, request.url.raw_path, response)
        except AssertionError:
            response.release()
            raise
        return response

    async def check(self, method: str, path: str, response: ClientResponse) -> None:
        """Raise ``AssertionError`` unless ``response`` is one ``method path`` may answer."""
        if self._routes is None:
            # Nothing is exempt until the document is known, except fetching it.
            assert (method, path) == ("GET", DOCUMENT_PATH), (
                f"{method} {path}: no OpenAPI document loaded to check the response against"
            )
            return
        media = response.content_type.lower()
        if path in OUTSIDE_DOCUMENT:
            allowed = OUTSIDE_DOCUMENT[path]
            assert _empty(method, response) or media in allowed, (
                f"{method} {path} (outside the document) answered {response.status} {media}; "
                f"it may answer {sorted(allowed)}"
            )
            return
        template, declared = self._operation(method, path)
        name = f"{method} {template} ({declared.get('operationId', '?')})"
        responses: Mapping[str, Any] = declared.get("responses", {})
        status = response.status
        key = next(
            (k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None
        )
        assert key is not None, (
            f"{name} answered {status}, which it does not declare "
            f"(declared: {', '.join(responses)})"
        )
        content: Mapping[str, Any] = responses[key].get("content", {})
        if _empty(method, response):
            return
        media_key = _matching_media(media, content)
        assert media_key is not None, (
            f"{name} answered {status} with {media or 'no content type'}; declared for "
            f"{key}: {', '.join(content) or 'no body'}"
        )
        schema = content[media_key].get("schema")
        if schema is None or not _JSON_MEDIA.match(media):
            return
        body = await response.read()
        try:
            instance = json.loads(body)
        except ValueError as invalid:
            raise AssertionError(
                f"{name} answered {status} {media} that is not JSON: {invalid}"
            ) from None
        validator = self._validator(
            ("paths", template, method.lower(), "responses", key, "content", media_key, "schema")
        )
        mismatch = best_match(validator.iter_errors(instance))
        assert mismatch is None, (
            f"{name} answered {status} {media} not matching its declared schema "
            f"{schema.get('$ref', '(inline)')} at {mismatch.json_path}: {mismatch.message}\n"
            f"body: {body[:500].decode(errors='replace')}"
        )

    def _operation(self, method: str, path: str) -> tuple[str, Mapping[str, Any]]:
        assert self._routes is not None
        # HEAD is served by every GET route and is not in the document on its own.
        wanted = [method.lower()] + (["get"] if method == "HEAD" else [])
        matched = [route for route in self._routes if route.pattern.fullmatch(path)]
        for route in matched:
            for candidate in wanted:
                if candidate in route.methods:
                    return route.template, route.methods[candidate]
        found = ", ".join(f"{sorted(r.methods)} {r.template}" for r in matched) or "none"
        raise AssertionError(
            f"{method} {path} matches no operation in the document (paths matching: {found}); "
            "declare it, list it in OUTSIDE_DOCUMENT, or send it inside unchecked(...)"
        )

    def _validator(self, location: tuple[str, ...]) -> Any:
        # The schema is referred to where it sits in the document, so its own relative refs
        # ("#/components/...") resolve against the document, not against the schema alone.
        if location not in self._validators:
            pointer = "".join("/" + part.replace("~", "~0").replace("/", "~1")
                              for part in location)
            ref = f"{_DOCUMENT_URI}#{quote(pointer, safe='/~')}"
            self._validators[location] = Draft202012Validator(
                {"$ref": ref}, registry=self._registry
            )
        return self._validators[location]


def _closed(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with every component object that says nothing of other fields closed."""
    closed = copy.deepcopy(dict(document))
    for schema in closed.get("components", {}).get("schemas", {}).values():
        if "properties" in schema and not _OPENNESS & set(schema):
            # unevaluated, not additional: fields listed by an allOf/anyOf branch still count.
            schema["unevaluatedProperties"] = False
    return closed


def _compile(template: str) -> re.Pattern[str]:
    parts = _PARAM.split(template)
    return re.compile("[^/]+".join(re.escape(part) for part in parts))


def _empty(method: str, response: ClientResponse) -> bool:
    # aiohttp labels an empty body application/octet-stream, so a bodiless answer has no
    # content type worth holding to the document.
    return (
        method == "HEAD"
        or response.status in (101, 204, 304)
        or response.headers.get("Content-Length") == "0"
    )


def _matching_media(media: str, content: Mapping[str, Any]) -> str | None:
    kind = media.split("/", 1)[0]
    for candidate in (media, f"{kind}/*", "*/*"):
        if candidate in content:
            return candidate
    return None
