"""The HTTP server under the gateway: aiohttp's, with Mercato's answers below the app.

Some requests never reach the application: the HTTP parser refuses them first (a header
over the size limit, too many headers, an over-long request line, bytes that are not
HTTP). aiohttp answers those itself, in ``RequestHandler.handle_error``: a ``text/plain``
body that quotes the offending input (tokens included), its own ``Server`` header naming
the Python and aiohttp versions, and a logged traceback. Here they get what every other
client error gets: problem+json with a stable code (431, 414 or 400), ``Server: mercato``
and the security headers, nothing of the input echoed, one log line, no traceback.

The parser also has no deadline: a client that sends a header line every few seconds
keeps its connection, and a socket, forever. A connection gets ``header_timeout``
seconds to complete each request head; past that it is answered 408 and closed.

aiohttp (3.14) has no setting for its protocol class, so ``GatewayRunner`` builds a
``web.Server`` whose connections use ``GatewayProtocol``. It overrides ``handle_error``
(meant for it) and the asyncio protocol callbacks, and reads five internal attributes of
``RequestHandler`` (queued messages, request count, current request, upgraded, loop):
aiohttp is pinned, and ``tests/integration/test_hostile_http.py`` drives every path over
real sockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from gateway import keys
from gateway.http.boundary import REQUEST_ID_HEADER, request_id_for
from gateway.http.keys import EDGE
from gateway.http.problems import PROBLEM_JSON, TYPE_BASE, problem

log = logging.getLogger("mercato.gateway")

# Parser limits. They differ on purpose: aiohttp reports both as LineTooLong, and the
# limit it names tells an over-long request line (414) from an over-long header (431).
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_FIELD = 16 * 1024
MAX_HEADERS = 100
# aiohttp's own message for MAX_HEADERS exceeded (the C and the Python parser say the same).
_TOO_MANY_HEADERS = "Too many headers received"


def refusal_of(exc: BaseException | None) -> tuple[int, str, str, str]:
    """Status, code, title and detail for a request the parser refused with ``exc``.

    The detail is fixed text: the parser's own message quotes the offending bytes.
    """
    if isinstance(exc, LineTooLong):
        if exc.args[1:2] == (MAX_REQUEST_LINE,):
            return (414, "URI_TOO_LONG", "URI too long",
                    f"the request line is limited to {MAX_REQUEST_LINE} bytes")
        return (431, "HEADERS_TOO_LARGE", "Request header fields too large",
                f"each header is limited to {MAX_HEADER_FIELD} bytes")
    if isinstance(exc, BadHttpMessage) and exc.message == _TOO_MANY_HEADERS:
        return (431, "HEADERS_TOO_LARGE", "Request header fields too large",
                f"a request may have at most {MAX_HEADERS} headers")
    return (400, "MALFORMED_REQUEST", "Malformed request",
            "the request is not valid HTTP/1.1 (request line, header syntax or bytes)")


class GatewayProtocol(RequestHandler):
    """One connection: aiohttp's handler with problem+json refusals and a header deadline."""

    __slots__ = ("_edge_headers", "_head_timer", "_header_timeout", "_last_body")

    def __init__(
        self, manager: web.Server, *, edge_headers: Iterable[tuple[str, str]],
        header_timeout: float, **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._edge_headers = tuple(edge_headers)
        self._header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        # The body of the last request whose head was parsed: until it has all arrived,
        # bytes from the client are that body (perhaps being discarded after an early
        # answer), not the head of the next request.
        self._last_body: StreamReader | None = None

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The answer to a request aiohttp could not hand to the application."""
        if request.writer.output_size > 0:
            # As aiohttp: part of a response is out, so no other can be sent.
            raise ConnectionError("a response was already being sent")
        request_id = request_id_for(None)
        request[keys.REQUEST_ID] = request_id
        if status >= 500 or not isinstance(exc, HttpProcessingError):
            # Not the client's input: an unknown failure, logged in full with its id.
            log.error("unhandled error below the app", exc_info=exc,
                      extra={"requestId": request_id})
            status, code, title = 500, "INTERNAL_ERROR", "Internal server error"
            detail = f"Something went wrong on our side. Quote request id {request_id}."
        else:
            status, code, title, detail = refusal_of(exc)
            log.info("refused a malformed request: %s %s (%s)", status, code,
                     type(exc).__name__, extra={"requestId": request_id})
        response = problem(
            request, status=status, code=code, title=title, detail=detail,
            headers={REQUEST_ID_HEADER: request_id},
            instance=f"urn:mercato:request:{request_id}",
        )
        response.headers.extend(self._edge_headers)
        response.force_close()
        return response

    # The head deadline. aiohttp's own keep-alive timer only closes connections that are
    # idle between requests; a head still arriving counts as busy.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the deadline of the first request head."""
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Parse as aiohttp does, then keep the deadline only while a head is incomplete."""
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed and self._messages:
            self._last_body = self._messages[-1][1]
        if self._busy():
            self._disarm()
        elif self._head_timer is None:
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def connection_lost(self, exc: BaseException | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def _busy(self) -> bool:
        # A complete head is queued or being handled, its body is still arriving, or the
        # connection left HTTP/1.1 (a WebSocket): what the client sends then is the
        # application's to read, at its own pace, not a request head.
        return (
            bool(self._messages) or self._current_request is not None or self._upgraded
            or (self._last_body is not None and not self._last_body.is_eof())
        )

    def _arm(self) -> None:
        if self._header_timeout > 0:
            self._head_timer = self._loop.call_later(self._header_timeout, self._head_overdue)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self._busy() or self.transport is None:
            return
        request_id = request_id_for(None)
        log.info("closed a connection whose request head took over %ss", self._header_timeout,
                 extra={"requestId": request_id})
        self.transport.write(_request_timeout(request_id, self._edge_headers))
        self.force_close()


def _request_timeout(request_id: str, edge_headers: Iterable[tuple[str, str]]) -> bytes:
    # Written straight to the socket: no request exists to answer through aiohttp.
    body = orjson.dumps({
        "type": TYPE_BASE + "request-timeout", "title": "Request timeout", "status": 408,
        "detail": "the request head did not arrive in time",
        "instance": f"urn:mercato:request:{request_id}", "code": "REQUEST_TIMEOUT",
        "requestId": request_id,
    })
    lines = [
        "HTTP/1.1 408 Request Timeout", f"Content-Type: {PROBLEM_JSON}",
        f"Content-Length: {len(body)}", "Connection: close", f"{REQUEST_ID_HEADER}: {request_id}",
        *(f"{name}: {value}" for name, value in edge_headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class GatewayServer(web.Server):
    """aiohttp's server, whose connections are ``GatewayProtocol``s."""

    def __init__(
        self, base: web.Server, *, edge_headers: Iterable[tuple[str, str]],
        header_timeout: float,
    ) -> None:
        # Built from the server aiohttp made for the app, so routing, the request factory
        # and every handler argument stay aiohttp's (``_loop`` and ``_kwargs`` have no
        # public accessors).
        super().__init__(
            base.request_handler, request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation, loop=base._loop, **base._kwargs,
        )
        self._edge_headers = tuple(edge_headers)
        self._header_timeout = header_timeout

    def __call__(self) -> GatewayProtocol:
        """A protocol for one new connection (asyncio's protocol factory)."""
        return GatewayProtocol(
            self, loop=self._loop, edge_headers=self._edge_headers,
            header_timeout=self._header_timeout,
            max_line_size=MAX_REQUEST_LINE, max_field_size=MAX_HEADER_FIELD,
            max_headers=MAX_HEADERS, **self._kwargs,
        )


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` serving the app through ``GatewayServer``."""

    def __init__(self, app: web.Application, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        edge = self.app.get(EDGE)
        return GatewayServer(
            base, edge_headers=() if edge is None else edge.headers.api.items(),
            header_timeout=self._header_timeout,
        )
