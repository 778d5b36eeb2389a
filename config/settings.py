"""The single, frozen settings object every process is built from.

Settings are read once, at process start, by ``Settings.from_env()``; tests
build them explicitly with ``Settings(...)``/``dataclasses.replace``. Nothing
here opens a connection. Each setting is declared once, by ``setting()``
(config/fields.py): the annotation is its type, the call gives its default,
variable and help; ``ENV_FIELDS``, parsing, ``to_env``, ``safe_dict`` and
docs/configuration.md are derived from the declarations.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from config.fields import ConfigError, Declared, declared, mask_dsn, setting

__all__ = [
    "DECLARED", "ENV_FIELDS", "JWT_ALGORITHMS", "JWT_KEYGEN", "ConfigError", "Settings",
    "dev_jwt_secret", "mask_dsn",
]

Env = Literal["dev", "prod"]
# HS256 signs with MERCATO_JWT_SECRET; the others sign with MERCATO_JWT_PRIVATE_KEY and
# publish their public keys at /.well-known/jwks.json (the gateway loads the keys at start).
JWT_ALGORITHMS = ("HS256", "EdDSA", "ES256", "RS256")
# The shortest saga retention prod accepts: the Idempotency-Key window (gateway.orders.idempotency).
MIN_PROD_SAGA_RETENTION = 24 * 60 * 60
# How to make a key each asymmetric algorithm accepts; quoted by configuration errors.
JWT_KEYGEN: dict[str, str] = {
    "EdDSA": "openssl genpkey -algorithm ed25519 -out jwt-signing.pem",
    "ES256": "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out jwt-signing.pem",
    "RS256": "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out jwt-signing.pem",
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a Mercato process needs to know about its world."""

    # Backends and the process.
    # RUF009 below: setting() returns a dataclasses.field, which ruff cannot see through.
    env: Env = setting(  # noqa: RUF009
        "dev", env="MERCATO_ENV",
        help="`dev` or `prod`; prod requires MERCATO_JWT_SECRET and sends HSTS.",
    )
    kafka_url: str = setting(
        "kafka://127.0.0.1:9092", env="MERCATO_KAFKA_URL", scheme="kafka",
        help="The Kafka brokers; comma-separate several (`kafka://b1:9092,b2:9092`).",
    )
    mongo_url: str = setting(
        "mongodb://127.0.0.1:27017/mercato", env="MERCATO_MONGO_URL", scheme="mongodb",
        help="The MongoDB server; the path names the database.",
    )
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0", env="MERCATO_REDIS_URL", scheme="redis",
        help="The Redis server (sessions, revocations, rate limits, push fan-out).",
    )
    redis_max_connections: int = setting(
        128, env="MERCATO_REDIS_MAX_CONNECTIONS",
        help="Redis connections per process at most.",
    )
    redis_pool_timeout: float = setting(
        5.0, env="MERCATO_REDIS_POOL_TIMEOUT",
        help="Seconds a caller waits for a free Redis connection before it gets a 503.",
    )
    http_host: str = setting(
        "127.0.0.1", env="MERCATO_HTTP_HOST", help="The address the gateway listens on.",
    )
    http_port: int = setting(8080, env="MERCATO_HTTP_PORT", help="The gateway's port.")
    # aiohttp's default of 128 pending connections drops SYNs when thousands of push clients
    # reconnect at once; each retry then waits seconds (the kernel caps it at somaxconn).
    http_backlog: int = setting(
        2048, env="MERCATO_HTTP_BACKLOG",
        help="Connections the kernel may queue before the gateway accepts them.",
    )
    # A client dripping header bytes would otherwise hold a socket forever.
    http_header_timeout: float = setting(
        10.0, env="MERCATO_HTTP_HEADER_TIMEOUT", zero_ok=True,
        help="Seconds a connection gets to send each request head, then 408 and closed; "
        "0 = off (a proxy in front enforces one).",
    )
    data_dir: Path = setting(  # noqa: RUF009
        Path(".mercato"), env="MERCATO_DATA_DIR",
        help="Worker RocksDB tables; in dev also the data, the JWT secret and the outbox.",
    )
    backup_dir: Path = setting(  # noqa: RUF009
        Path("backups"), env="MERCATO_BACKUP_DIR",
        help="Where `POST /v1/admin/backups` writes backups, one directory each; a relative "
        "path is under MERCATO_DATA_DIR (`mercato backup create DIR` takes its own DIR).",
    )
    # Token signing (see docs/production.md#token-signing-keys).
    jwt_secret: str = setting(
        "", env="MERCATO_JWT_SECRET", secret=True,
        help="The HS256 signing secret, at least 32 characters in prod; dev generates one "
        "and keeps it in the data dir.",
    )
    jwt_previous_secrets: str = setting(
        "", env="MERCATO_JWT_PREVIOUS_SECRETS", secret=True,
        help="Comma-separated retired secrets that still verify tokens (by kid) after a "
        "rotation; never sign.",
    )
    jwt_algorithm: str = setting(
        "HS256", env="MERCATO_JWT_ALGORITHM",
        help="HS256 keeps tokens verifiable only by holders of the secret; EdDSA, ES256 or "
        "RS256 sign with MERCATO_JWT_PRIVATE_KEY and publish /.well-known/jwks.json.",
    )
    jwt_private_key: str = setting(
        "", env="MERCATO_JWT_PRIVATE_KEY", secret=True,
        help="PEM private key for EdDSA/ES256/RS256: a value starting with `-----BEGIN` is "
        "the PEM itself (newlines may be written as \\n), anything else a PEM file's path.",
    )
    # PEM bodies contain no commas, so a comma separates keys.
    jwt_previous_public_keys: str = setting(
        "", env="MERCATO_JWT_PREVIOUS_PUBLIC_KEYS",
        help="Comma-separated retired public keys (each a path or a PEM) that still verify "
        "tokens (by kid) after a rotation; never sign.",
    )
    jwt_issuer: str = setting("mercato", env="MERCATO_JWT_ISSUER", help="Tokens' `iss`.")
    jwt_audience: str = setting(
        "mercato-api", env="MERCATO_JWT_AUDIENCE", help="Tokens' `aud`.",
    )
    access_token_ttl: int = setting(
        15 * 60, env="MERCATO_ACCESS_TOKEN_TTL",
        help="Seconds an access token is valid (15 minutes).",
    )
    session_max_age: int = setting(
        30 * 24 * 60 * 60, env="MERCATO_SESSION_MAX_AGE",
        help="Seconds after sign-in a session (refresh-token family) ends, however often "
        "refreshed (30 days).",
    )
    # Kafka and the workers.
    topic_prefix: str = setting(
        "mercato.", env="MERCATO_TOPIC_PREFIX", help="Prepended to every topic name.",
    )
    # Fixed once the topics exist: a topic's partition picks which worker owns a key, so a
    # change needs new topics (docs/production.md, "Partitions").
    topic_partitions: int = setting(
        4, env="MERCATO_TOPIC_PARTITIONS",
        help="Partitions of every topic but the single-partition `dlq`, and so the most "
        "workers that share the work: a few for dev, dozens in production.",
    )
    app_id: str = setting(
        "mercato", env="MERCATO_APP_ID", help="The workers' Faust app id and consumer group.",
    )
    kafka_replication: int = setting(
        1, env="MERCATO_KAFKA_REPLICATION",
        help="Replication factor of the topics: 1 for the single-node dev broker, 3 on a "
        "production cluster.",
    )
    # Idempotent producers need broker support; the Tansu dev broker has none.
    kafka_idempotent: bool = setting(
        True, env="MERCATO_KAFKA_IDEMPOTENT",
        help="Idempotent producers; false for brokers without them (Tansu).",
    )
    kafka_empty_fetch_backoff_ms: int = setting(
        10, env="MERCATO_KAFKA_EMPTY_FETCH_BACKOFF_MS", zero_ok=True,
        help="Milliseconds a consumer waits after an empty fetch, a client-side stand-in "
        "for the broker's fetch wait; 0 = off.",
    )
    kafka_idle_fetch_backoff_ms: int = setting(
        100, env="MERCATO_KAFKA_IDLE_FETCH_BACKOFF_MS", zero_ok=True,
        help="The same wait after a second without records (a quiet consumer then costs "
        "~2% of a core); 0 = off.",
    )
    kafka_fetch_interval_ms: int = setting(
        5, env="MERCATO_KAFKA_FETCH_INTERVAL_MS", zero_ok=True,
        help="Least milliseconds between one consumer's fetches, so a busy consumer takes "
        "records in batches rather than one fetch per record or two; 0 = none. Needs the "
        "empty-fetch backoff on.",
    )
    # A command's own deadline is a little earlier, so one applied in time answers in time.
    command_timeout: float = setting(
        5.0, env="MERCATO_COMMAND_TIMEOUT",
        help="Seconds the gateway waits for an agent's answer before it says 503.",
    )
    worker_session_timeout: float = setting(
        10.0, env="MERCATO_WORKER_SESSION_TIMEOUT",
        help="Seconds of silence after which the group gives a worker's partitions to others.",
    )
    # Push and logs.
    push_queue_size: int = setting(
        256, env="MERCATO_PUSH_QUEUE_SIZE",
        help="Live events held back per WebSocket/SSE client while its replay runs (more "
        "evicts it), and the most frames one write to a client coalesces.",
    )
    push_queue_bytes: int = setting(
        1024 * 1024, env="MERCATO_PUSH_QUEUE_BYTES",
        help="Bytes a WebSocket/SSE client may leave unread (queued in the gateway or its "
        "socket buffer) before it is evicted as a slow client (close code 1013).",
    )
    gc_freeze: bool = setting(
        True, env="MERCATO_GC_FREEZE",
        help="Freeze the gateway's surviving objects once a second (`gc.freeze()`), so full "
        "garbage collections walk only new ones instead of every push connection's "
        "(gateway.runtime.gc_policy); false keeps CPython's own schedule.",
    )
    gc_collect_after_closed: int = setting(
        100_000, env="MERCATO_GC_COLLECT_AFTER_CLOSED",
        help="With MERCATO_GC_FREEZE, push connections closed (or as many as are open, if "
        "more) before one full collection frees frozen reference cycles (one runs hourly "
        "in any case); it pauses the gateway about 0.085 s per 1,000 open connections.",
    )
    sse_heartbeat: float = setting(
        15.0, env="MERCATO_SSE_HEARTBEAT",
        help="Seconds of quiet after which an SSE stream sends a keep-alive comment.",
    )
    presence_ttl: float = setting(
        15.0, env="MERCATO_PRESENCE_TTL",
        help="Seconds a gateway's presence counts outlive its last heartbeat (one a second), "
        "so the viewers of a gateway that died drop out of every count.",
    )
    log_level: str = setting("INFO", env="MERCATO_LOG_LEVEL", help="The root log level.")
    log_json: bool = setting(
        True, env="MERCATO_LOG_JSON", help="JSON log lines, carrying the request id.",
    )
    access_log: str = setting(
        "errors", env="MERCATO_ACCESS_LOG", choices=("errors", "all"),
        help="`errors`: 4xx/5xx and slow requests (counts live in /metrics); `all`: every "
        "request (health probes only then: readiness logs its own changes).",
    )
    # HTTP caching of public reads, and the shared response cache (Redis).
    cache_product_max_age: int = setting(
        300, env="MERCATO_CACHE_PRODUCT_MAX_AGE", zero_ok=True,
        help="`Cache-Control` max-age (seconds) of GET /v1/products/{id}: how long a "
        "browser or CDN may show a product page without asking again.",
    )
    cache_listing_max_age: int = setting(
        60, env="MERCATO_CACHE_LISTING_MAX_AGE", zero_ok=True,
        help="`Cache-Control` max-age (seconds) of GET /v1/products (browse and search).",
    )
    cache_reviews_max_age: int = setting(
        60, env="MERCATO_CACHE_REVIEWS_MAX_AGE", zero_ok=True,
        help="`Cache-Control` max-age (seconds) of GET /v1/products/{id}/reviews.",
    )
    cache_jwks_max_age: int = setting(
        300, env="MERCATO_CACHE_JWKS_MAX_AGE", zero_ok=True,
        help="`Cache-Control` max-age (seconds) of /.well-known/jwks.json (keys change only "
        "on a rotation, and a retired key stays listed while its tokens live).",
    )
    cache_stale_while_revalidate: int = setting(
        30, env="MERCATO_CACHE_STALE_WHILE_REVALIDATE", zero_ok=True,
        help="`stale-while-revalidate` (seconds) of every public read: a cache may answer "
        "with the expired copy while it asks again in the background.",
    )
    response_cache: bool = setting(
        True, env="MERCATO_RESPONSE_CACHE",
        help="Keep the hottest public reads (one product, product listings) in Redis, "
        "shared by every gateway and dropped by the change events themselves.",
    )
    response_cache_ttl: int = setting(
        60, env="MERCATO_RESPONSE_CACHE_TTL",
        help="Seconds an entry of the response cache lives at most; events drop it sooner.",
    )
    response_cache_local_entries: int = setting(
        10_000, env="MERCATO_RESPONSE_CACHE_LOCAL_ENTRIES", zero_ok=True,
        help="Entries of the response cache each gateway also keeps in its own memory "
        "(least recently used out first; 0: none). A copy answers only after a Redis read "
        "of its scope's generation, shared by concurrent reads, says it is current.",
    )
    response_cache_local_bytes: int = setting(
        64 << 20, env="MERCATO_RESPONSE_CACHE_LOCAL_BYTES",
        help="Bytes of answers those in-memory copies hold at most, per gateway.",
    )
    response_cache_local_ttl: int = setting(
        10, env="MERCATO_RESPONSE_CACHE_LOCAL_TTL",
        help="Seconds an in-memory copy lives at most (at most MERCATO_RESPONSE_CACHE_TTL): "
        "the backstop for a generation counter that restarted with Redis's data.",
    )
    # Feature flags (the `config` topic, docs/features.md).
    maintenance_retry_after: int = setting(
        30, env="MERCATO_MAINTENANCE_RETRY_AFTER",
        help="`Retry-After` (seconds) of the 503 MAINTENANCE a write gets while the "
        "`maintenance` flag is on.",
    )
    # Files.
    max_upload_bytes: int = setting(
        25 * 1024 * 1024, env="MERCATO_MAX_UPLOAD_BYTES",
        help="The largest single upload (25 MiB).",
    )
    file_quota_bytes: int = setting(
        1024 * 1024 * 1024, env="MERCATO_FILE_QUOTA_BYTES",
        help="Each user's total stored bytes (1 GiB).",
    )
    # Groups (file sharing).
    group_max_members: int = setting(
        100, env="MERCATO_GROUP_MAX_MEMBERS",
        help="The most members one group may have, its owner not counted.",
    )
    groups_per_owner: int = setting(
        50, env="MERCATO_GROUPS_PER_OWNER", help="The most groups one user may own.",
    )
    # Gateway edge: rate limits, proxies, TLS and CORS.
    rate_limit_enabled: bool = setting(
        True, env="MERCATO_RATE_LIMIT_ENABLED", help="Rate limit requests per user or IP.",
    )
    rate_limits: str = setting(
        "", env="MERCATO_RATE_LIMITS",
        help="Overrides of the rate-limit classes (auth, write, read, stream, events), "
        "comma-separated `class=quota/window:burst`: `read=600/60:100,auth=10/60:5`.",
    )
    trust_proxy: bool = setting(
        False, env="MERCATO_TRUST_PROXY",
        help="Behind exactly one trusted proxy: the client is the last X-Forwarded-For entry.",
    )
    tls_terminated: bool = setting(
        False, env="MERCATO_TLS_TERMINATED",
        help="TLS is terminated in front of the gateway: send Strict-Transport-Security "
        "(always in prod).",
    )
    cors_origins: str = setting(
        "", env="MERCATO_CORS_ORIGINS",
        help="Comma-separated allowed origins (`*`, `https://a.example`, "
        "`http://localhost:*`); empty: localhost origins in dev, none in prod.",
    )
    # Payments (RetryPolicy and CircuitBreaker): a call sequence blocks the payments agent
    # for at most attempts * call_timeout + backoffs (defaults: about 6.6 s). The breaker
    # opens when, among at least min_calls charges/refunds (each counted once, retries
    # included) within the window, failure_rate of them failed.
    payment_call_timeout: float = setting(
        2.0, env="MERCATO_PAYMENT_CALL_TIMEOUT", help="Seconds each payment provider call gets.",
    )
    payment_attempts: int = setting(
        3, env="MERCATO_PAYMENT_ATTEMPTS",
        help="Attempts per provider call; timeouts and 5xx are retried.",
    )
    payment_backoff: float = setting(
        0.2, env="MERCATO_PAYMENT_BACKOFF",
        help="Seconds before the first retry of a provider call, doubled for each next one "
        "(at most 2 s).",
    )
    payment_breaker_min_calls: int = setting(
        10, env="MERCATO_PAYMENT_BREAKER_MIN_CALLS",
        help="Charges and refunds within the window before the circuit breaker may open.",
    )
    payment_breaker_failure_rate: float = setting(
        0.5, env="MERCATO_PAYMENT_BREAKER_FAILURE_RATE",
        help="The fraction of failed charges and refunds in the window that opens the breaker.",
    )
    payment_breaker_window: float = setting(
        30.0, env="MERCATO_PAYMENT_BREAKER_WINDOW",
        help="Seconds of calls the breaker counts.",
    )
    payment_breaker_cooldown: float = setting(
        15.0, env="MERCATO_PAYMENT_BREAKER_COOLDOWN",
        help="Seconds the breaker stays open before it lets one trial call through.",
    )
    # Order saga. The charge deadline must outlast the payments agent's own provider retries.
    saga_reserve_timeout: float = setting(
        10.0, env="MERCATO_SAGA_RESERVE_TIMEOUT",
        help="Seconds the saga waits for a stock reservation.",
    )
    saga_charge_timeout: float = setting(
        30.0, env="MERCATO_SAGA_CHARGE_TIMEOUT", help="Seconds the saga waits for a charge.",
    )
    saga_refund_timeout: float = setting(
        30.0, env="MERCATO_SAGA_REFUND_TIMEOUT", help="Seconds the saga waits for a refund.",
    )
    saga_tick: float = setting(
        0.5, env="MERCATO_SAGA_TICK", help="Seconds between two looks of the deadline timer.",
    )
    saga_charge_retry: float = setting(
        1.0, env="MERCATO_SAGA_CHARGE_RETRY",
        help="While the breaker is open, seconds between re-sends of a charge (until its "
        "deadline).",
    )
    saga_refund_backoff: float = setting(
        1.0, env="MERCATO_SAGA_REFUND_BACKOFF",
        help="A failed refund is re-sent after this * 2^n seconds.",
    )
    saga_refund_max_backoff: float = setting(
        300.0, env="MERCATO_SAGA_REFUND_MAX_BACKOFF",
        help="The longest wait between two re-sends of a failed refund, in seconds.",
    )
    # Longer than any record can wait for its order: Kafka keeps a record up to retention.ms
    # + segment.ms (7 + 7 days by default) and an Idempotency-Key names its order for 24 h.
    # See docs/reliability.md, "Finished orders are forgotten".
    saga_retention: int = setting(
        14 * 24 * 60 * 60, env="MERCATO_SAGA_RETENTION",
        help="Seconds after an order's last change (once it has ended) before the saga and "
        "the inventory delete what they keep for it (14 days); a completed order can be "
        "cancelled (refunded) until then. At least a day (86400) in prod.",
    )
    stock_low_threshold: int = setting(
        5, env="MERCATO_STOCK_LOW_THRESHOLD", zero_ok=True,
        help="A seller is told when a product's stock falls below this (0: never); a "
        "seller's own threshold (PATCH /v1/users/me stockLowThreshold) wins.",
    )
    # Analytics.
    analytics_grace: float = setting(
        120.0, env="MERCATO_ANALYTICS_GRACE",
        help="Seconds behind its partition's newest event an event may be and still count "
        "(revise its window).",
    )
    analytics_tick: float = setting(
        1.0, env="MERCATO_ANALYTICS_TICK",
        help="Seconds between two closings of windows on idle partitions.",
    )
    analytics_snapshot_interval: float = setting(
        1.0, env="MERCATO_ANALYTICS_SNAPSHOT_INTERVAL",
        help="The least seconds between two dashboard snapshots of one scope.",
    )
    # Webhooks (agents.webhooks): one endpoint's slowness is bounded by its own slots and
    # the timeout; it never holds the other endpoints' slots or the pipeline's agents.
    webhook_retry_schedule: str = setting(
        "5,30,120,600,3600,21600,86400", env="MERCATO_WEBHOOK_RETRY_SCHEDULE",
        help="Comma-separated seconds: the n-th retry of a failed delivery waits a random "
        "time up to the n-th entry (full jitter); a delivery failing once more than the "
        "schedule has entries is failed for good.",
    )
    webhook_timeout: float = setting(
        10.0, env="MERCATO_WEBHOOK_TIMEOUT",
        help="Seconds a webhook endpoint gets to answer one delivery.",
    )
    webhook_endpoint_concurrency: int = setting(
        4, env="MERCATO_WEBHOOK_ENDPOINT_CONCURRENCY",
        help="Deliveries in flight to one webhook endpoint at most (per worker).",
    )
    webhook_concurrency: int = setting(
        64, env="MERCATO_WEBHOOK_CONCURRENCY",
        help="Webhook deliveries in flight at most (per worker), all endpoints together.",
    )
    webhook_disable_after: int = setting(
        50, env="MERCATO_WEBHOOK_DISABLE_AFTER",
        help="Consecutive failed delivery attempts after which an endpoint is disabled and "
        "its owner notified.",
    )
    webhook_max_per_owner: int = setting(
        10, env="MERCATO_WEBHOOK_MAX_PER_OWNER",
        help="Webhook endpoints one seller or admin may register.",
    )
    webhook_tick: float = setting(
        1.0, env="MERCATO_WEBHOOK_TICK",
        help="Seconds between two looks for webhook deliveries that are due.",
    )

    def __post_init__(self) -> None:
        for item in DECLARED:
            item.check(getattr(self, item.name))
        if not 0 < self.payment_breaker_failure_rate <= 1:
            raise ConfigError(
                "MERCATO_PAYMENT_BREAKER_FAILURE_RATE must be a fraction in (0, 1], got "
                f"{self.payment_breaker_failure_rate!r} (0.5: half of the recent payments failed)"
            )
        if self.env == "prod" and len(self.jwt_secret) < 32:
            raise ConfigError(
                "MERCATO_JWT_SECRET must be set to at least 32 random characters in prod "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.env == "prod" and self.saga_retention < MIN_PROD_SAGA_RETENTION:
            # An Idempotency-Key names its order for a day: a client retrying after the
            # saga forgot the order would place it again.
            raise ConfigError(
                f"MERCATO_SAGA_RETENTION must be at least {MIN_PROD_SAGA_RETENTION} seconds "
                f"(a day) in prod, got {self.saga_retention} (default: 1209600, 14 days)"
            )
        self._check_jwt_algorithm()
        self._check_webhook_schedule()

    def _check_webhook_schedule(self) -> None:
        try:
            delays = self.webhook_retry_delays
        except ValueError:
            delays = ()
        if not delays or any(delay < 0 for delay in delays):
            raise ConfigError(
                "MERCATO_WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds >= 0, got "
                f"{self.webhook_retry_schedule!r} (for example: 5,30,120,600,3600)"
            )

    def _check_jwt_algorithm(self) -> None:
        # Only the combination is checked here; the keys themselves are read and checked by
        # the gateway at start, so workers never need the private key.
        if self.jwt_algorithm not in JWT_ALGORITHMS:
            raise ConfigError(
                f"MERCATO_JWT_ALGORITHM must be one of {', '.join(JWT_ALGORITHMS)}, "
                f"got {self.jwt_algorithm!r}"
            )
        if self.jwt_algorithm == "HS256":
            if self.jwt_private_key.strip() or self.jwt_previous_public_keys.strip():
                raise ConfigError(
                    "MERCATO_JWT_PRIVATE_KEY and MERCATO_JWT_PREVIOUS_PUBLIC_KEYS are used only "
                    "with MERCATO_JWT_ALGORITHM=EdDSA, ES256 or RS256 (it is HS256): set the "
                    "algorithm, or unset the keys"
                )
        elif not self.jwt_private_key.strip():
            raise ConfigError(
                f"MERCATO_JWT_ALGORITHM={self.jwt_algorithm} signs with a private key: set "
                "MERCATO_JWT_PRIVATE_KEY to the path of a PEM private key (make one with: "
                f"{JWT_KEYGEN[self.jwt_algorithm]})"
            )

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """``MERCATO_WEBHOOK_RETRY_SCHEDULE`` as seconds (checked at construction)."""
        return tuple(float(part) for part in self.webhook_retry_schedule.split(",") if part.strip())

    @property
    def kafka_bootstrap(self) -> list[str]:
        """``host:port`` pairs for aiokafka from ``kafka://h1:9092,h2:9092``."""
        netloc = self.kafka_url.split("://", 1)[1].split("/", 1)[0]
        return [part for part in netloc.split(",") if part]

    @property
    def mongo_database(self) -> str:
        """Database named by the path of the MongoDB URL (default ``mercato``)."""
        name = urlsplit(self.mongo_url).path.lstrip("/")
        return name or "mercato"

    @property
    def previous_jwt_secrets(self) -> tuple[str, ...]:
        """Retired signing secrets that still verify tokens until those expire."""
        return tuple(part.strip() for part in self.jwt_previous_secrets.split(",") if part.strip())

    def topic(self, name: str) -> str:
        """The full topic name for a catalogue name such as ``users``."""
        return f"{self.topic_prefix}{name}"

    def safe_dict(self) -> dict[str, Any]:
        """The settings as a dict that is safe to log (passwords masked, secrets hidden)."""
        return {item.name: item.safe(getattr(self, item.name)) for item in DECLARED}

    def to_env(self) -> dict[str, str]:
        """``MERCATO_*`` variables that make ``from_env`` rebuild these settings (for children)."""
        return {item.env: item.render(getattr(self, item.name)) for item in DECLARED}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``MERCATO_*`` variables; dev defaults need nothing set."""
        env = os.environ if environ is None else environ
        kwargs = {item.name: item.parse(env[item.env]) for item in DECLARED if item.env in env}
        settings = cls(**kwargs)
        if settings.env == "dev" and not settings.jwt_secret:
            settings = dataclasses.replace(settings, jwt_secret=dev_jwt_secret(settings.data_dir))
        return settings


def dev_jwt_secret(data_dir: Path) -> str:
    """The dev signing secret: generated once, kept in the data dir so tokens survive restarts."""
    path = data_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Written with 0600: it signs every token of this dev stack.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


# Every setting in declaration order, and every variable Mercato reads with the field it sets.
DECLARED: tuple[Declared, ...] = declared(Settings)
ENV_FIELDS: dict[str, str] = {item.env: item.name for item in DECLARED}
