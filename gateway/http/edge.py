"""The gateway's edge: the one middleware every request passes, and nothing else per request.

Each aiohttp middleware layer costs a coroutine frame and a wrapper per request, and an
``on_response_prepare`` hook a signal dispatch per response, so the cross-cutting
concerns run in one middleware as plain calls, in order:

1. a request id (a short, plain client ``X-Request-ID`` is echoed) and the log context;
2. CORS preflights answered before the limiter (browsers send them unasked, then cache);
3. the caller: a Bearer token (or a ``?token=`` stream ticket) verified once through
   ``TokenService``'s cache; the limiter and the revocation check both use the answer;
4. the rate limit of the route's class, by that user or else the client address: a refused
   request gets its 429 before any handler work (token checks, MongoDB, argon2);
5. the caller's "not before" instant: a Bearer principal that is not revoked is handed to
   ``authenticate`` as it is, which then has nothing left to check;
6. maintenance mode: while the ``maintenance`` flag is on for the caller, a write on /v1
   is refused with 503 ``MAINTENANCE`` (``gateway.http.maintenance``);
7. the handler; every error becomes problem+json (``gateway.http.boundary``);
8. the edge's headers on the response (security, CORS, rate limit, request id);
9. metrics and the access log, by route template (health probes only with ``all``).

Handlers that send their headers themselves (WebSocket handshakes, SSE streams,
downloads) call ``prepare(request, response)`` instead of ``response.prepare``, so those
responses carry the same headers (``tests/unit/test_edge.py`` keeps it that way).
"""

from __future__ import annotations

from time import perf_counter

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import istr

from config import Settings
from gateway import keys
from gateway.http.boundary import (
    REQUEST_ID_HEADER,
    SLOW_SECONDS,
    log_access,
    render_failure,
    request_id_for,
)
from gateway.http.headers import EdgeHeaders
from gateway.http.keys import EDGE, RATE_DECISION
from gateway.http.logs import request_id_var
from gateway.http.maintenance import WRITE_METHODS, covers, under_maintenance
from gateway.http.ratelimit.limiter import Decision
from gateway.http.ratelimit.web import (
    RateLimits,
    too_many_requests,
    verdict,
    with_ratelimit_headers,
)
from gateway.http.request_stats import RequestStats
from gateway.http.revocation import Revocations
from gateway.identity.auth import Principal, TokenService, bearer_token, revoked
from streams.errors import Unauthenticated
from streams.flags.book import FlagBook


class Edge:
    """The middleware of one application (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.headers = EdgeHeaders(settings)
        self._log_all = settings.access_log == "all"
        self._maintenance_retry = settings.maintenance_retry_after
        # The app's services, bound once it has started (see ``_bind``).
        self._tokens: TokenService | None = None
        self._limits: RateLimits | None = None
        self._revocations: Revocations | None = None
        self._stats: RequestStats | None = None
        self._flags: FlagBook | None = None

    def install(self, app: web.Application) -> None:
        """Make ``app`` (and only it) run every request through the edge (outermost)."""
        app[EDGE] = self
        app.middlewares.insert(0, self.middleware)
        # Appended after the app's cleanup contexts, so it runs once they have started.
        app.on_startup.append(self._bind)

    async def _bind(self, app: web.Application) -> None:
        # Looked up once rather than per request; absent ones (a disabled limiter, test
        # apps without Redis) switch their step off.
        self._tokens = app.get(keys.TOKENS)
        self._limits = app.get(keys.RATE_LIMITS)
        self._revocations = app.get(keys.REVOCATIONS)
        self._flags = app.get(keys.FLAGS)
        metrics = app.get(keys.METRICS)
        self._stats = metrics.http if metrics is not None else None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Steps 1-9 of the module docstring."""
        request_id = request_id_for(request.headers.get(_REQUEST_ID))
        request[keys.REQUEST_ID] = request_id
        # Not reset afterwards: aiohttp runs each request in its own task, whose copy of
        # the context ends with it (and tasks the handler starts keep the id for their logs).
        request_id_var.set(request_id)
        started = perf_counter()
        decision: Decision | None = None
        response: web.StreamResponse
        try:
            if request.method == "OPTIONS":
                preflight = self.headers.preflight(request)
                if preflight is not None:
                    return self._finish(request, request_id, preflight, None, started)
            caller = None if self._tokens is None else _caller(request, self._tokens)
            limits = self._limits
            if limits is not None:
                judged = verdict(request, limits, caller)
                if judged is None or isinstance(judged, Decision):
                    decision = judged
                else:
                    decision = await judged
                if decision is not None:
                    request[RATE_DECISION] = decision  # for prepare(), if it streams
                    if not decision.allowed:
                        refused = too_many_requests(request, limits, decision)
                        return self._finish(request, request_id, refused, decision, started)
            if caller is not None and (revocations := self._revocations) is not None:
                # Step 5. A Bearer principal not revoked is handed to authenticate() as is.
                principal, ticket = caller
                user_id = principal.user_id
                not_before = revocations.cached(user_id)
                if not_before is None:
                    not_before = await revocations.not_before(user_id)
                request[keys.NOT_BEFORE] = (user_id, not_before)
                if not ticket and not revoked(principal, not_before):
                    request[keys.PRINCIPAL] = principal
            if (
                request.method in WRITE_METHODS
                and (flags := self._flags) is not None
                and flags.enabled("maintenance", request.get(keys.PRINCIPAL))
                and covers(request.method, request.path)
            ):
                raise under_maintenance(self._maintenance_retry)
            response = await handler(request)
        except Exception as exc:  # the one error boundary of the gateway
            response = render_failure(request, exc)
        if decision is not None:
            # A handler that charged more tokens (ratelimit.charge) left the later verdict.
            decision = request[RATE_DECISION]
        return self._finish(request, request_id, response, decision, started)

    def _finish(
        self, request: web.Request, request_id: str, response: web.StreamResponse,
        decision: Decision | None, started: float,
    ) -> web.StreamResponse:
        # Steps 8 and 9: headers (unless the handler sent them already), metrics, access log.
        if not response.prepared:
            self.decorate(request, request_id, response, decision)
        elapsed = perf_counter() - started
        status = response.status
        if self._stats is not None:
            self._stats.observe(request, status, elapsed)
        if self._log_all or (
            (status >= 400 or elapsed >= SLOW_SECONDS) and request.path not in PROBE_PATHS
        ):
            log_access(request, status, elapsed)
        return response

    def decorate(
        self, request: web.Request, request_id: str, response: web.StreamResponse,
        decision: Decision | None,
    ) -> None:
        """Put the edge's headers on ``response`` before it is sent."""
        headers = response.headers
        headers.add(_REQUEST_ID, request_id)
        # The security block and the client's rate-limit headers go in as one prebuilt block.
        block = self.headers.block(request)
        if decision is not None:
            block = with_ratelimit_headers(block, decision)
        self.headers.apply(request, headers, block)


async def prepare(request: web.Request, response: web.StreamResponse) -> None:
    """``response.prepare(request)`` with the edge's headers: for handlers that stream."""
    edge = request.app.get(EDGE)
    request_id = request.get(keys.REQUEST_ID)
    if edge is not None and request_id is not None:
        edge.decorate(request, request_id, response, request.get(RATE_DECISION))
    await response.prepare(request)


_REQUEST_ID = istr(REQUEST_ID_HEADER)
# Polled by orchestrators and `mercato dev`: access-logged only with MERCATO_ACCESS_LOG=all
# (readiness logs its own changes, with the failing checks).
PROBE_PATHS = frozenset({"/health/live", "/health/ready"})


def _caller(request: web.Request, tokens: TokenService) -> tuple[Principal, bool] | None:
    """The verified principal of the request's token and whether it is a stream ticket.

    None without a token or with one that does not verify: the limiter then counts the
    request against the client address, and the handler's ``authenticate`` says why the
    token was refused.
    """
    token = bearer_token(request)
    ticket = False
    if token is None:
        if not request.query_string:
            return None
        token = request.query.get("token")
        if not token:
            return None
        ticket = True
    try:
        return tokens.verify(token, stream=ticket), ticket
    except Unauthenticated:
        return None
