"""The single, frozen settings object every process is built from.

Settings are read once, at process start, by ``Settings.from_env()``; tests
build them explicitly with ``Settings(...)``/``dataclasses.replace``. Nothing
here opens a connection.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

Env = Literal["dev", "prod"]
# HS256 signs with MERCATO_JWT_SECRET; the others sign with MERCATO_JWT_PRIVATE_KEY and
# publish their public keys at /.well-known/jwks.json (gateway/signing.py loads the keys).
JWT_ALGORITHMS = ("HS256", "EdDSA", "ES256", "RS256")
# How to make a key each asymmetric algorithm accepts; quoted by configuration errors.
JWT_KEYGEN: dict[str, str] = {
    "EdDSA": "openssl genpkey -algorithm ed25519 -out jwt-signing.pem",
    "ES256": "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out jwt-signing.pem",
    "RS256": "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out jwt-signing.pem",
}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def mask_dsn(url: str) -> str:
    """Hide the password of a DSN so it can be logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def _env_bool(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _env_number(
    raw: str, name: str, kind: type[int] | type[float], *, allow_zero: bool = False
) -> Any:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(
            f"{name} must be {'zero or more' if allow_zero else 'positive'}, got {raw!r}"
        )
    return value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a Mercato process needs to know about its world."""

    env: Env = "dev"
    kafka_url: str = "kafka://127.0.0.1:9092"
    mongo_url: str = "mongodb://127.0.0.1:27017/mercato"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Per process: at most this many Redis connections; a caller beyond them waits up to
    # redis_pool_timeout seconds for one to free up (stores/redisdb.py), then gets a 503.
    redis_max_connections: int = 128
    redis_pool_timeout: float = 5.0
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Seconds a connection gets to send each request head; a slower one is answered 408
    # and closed (a client dripping header bytes would otherwise hold a socket forever).
    # 0 switches the deadline off (a proxy in front enforces one).
    http_header_timeout: float = 10.0
    data_dir: Path = Path(".mercato")
    jwt_secret: str = dataclasses.field(default="", repr=False)
    # Comma-separated secrets that still verify tokens (by kid) after a rotation; never sign.
    jwt_previous_secrets: str = dataclasses.field(default="", repr=False)
    # One of JWT_ALGORITHMS. HS256 keeps tokens verifiable only by holders of the secret.
    jwt_algorithm: str = "HS256"
    # PEM private key for EdDSA/ES256/RS256: a value starting with "-----BEGIN" is the PEM
    # itself (newlines may be written as \n), anything else is the path of a PEM file.
    jwt_private_key: str = dataclasses.field(default="", repr=False)
    # Comma-separated retired public keys (each a path or a PEM, as above) that still verify
    # tokens (by kid) after a rotation; never sign. PEM bodies contain no commas.
    jwt_previous_public_keys: str = ""
    jwt_issuer: str = "mercato"
    jwt_audience: str = "mercato-api"
    access_token_ttl: int = 15 * 60
    # A signed-in session (refresh-token family) ends this long after sign-in, used or not.
    session_max_age: int = 30 * 24 * 60 * 60
    topic_prefix: str = "mercato."
    app_id: str = "mercato"
    # 1 for the single-node dev broker; 3 on a production Kafka cluster.
    kafka_replication: int = 1
    # Idempotent producers need broker support; the Tansu dev broker has none.
    kafka_idempotent: bool = True
    # Client-side stand-in for the broker's fetch wait (see streams/kafka_compat.py); 0 = off.
    kafka_empty_fetch_backoff_ms: int = 10
    # ... and after a second without records (a quiet consumer then costs ~2% of a core).
    kafka_idle_fetch_backoff_ms: int = 100
    # How long the gateway waits for an agent's answer before it says 503. A command's
    # deadline is a little earlier, so one applied in time can still answer in time.
    command_timeout: float = 5.0
    worker_session_timeout: float = 10.0
    push_queue_size: int = 256
    sse_heartbeat: float = 15.0
    log_level: str = "INFO"
    log_json: bool = True
    # "errors": 4xx/5xx and slow requests (counts live in /metrics); "all": every request.
    access_log: str = "errors"
    # Files: the largest single upload and each user's total stored bytes.
    max_upload_bytes: int = 25 * 1024 * 1024
    file_quota_bytes: int = 1024 * 1024 * 1024
    # Gateway edge: rate limits (see gateway/ratelimit.py), proxies, TLS and CORS.
    rate_limit_enabled: bool = True
    # Overrides of gateway/ratelimit.py POLICIES: "read=600/60:100,auth=10/60:5" (q/w:burst).
    rate_limits: str = ""
    # Behind exactly one trusted proxy: the client is the last X-Forwarded-For entry.
    trust_proxy: bool = False
    # TLS is terminated in front of the gateway: send Strict-Transport-Security (always in prod).
    tls_terminated: bool = False
    # Comma-separated allowed origins ("*", "https://a.example", "http://localhost:*");
    # empty means localhost origins in dev and none in prod.
    cors_origins: str = ""
    # Payments (agents/payment_calls.py): each provider call, retries of timeouts and 5xx with
    # exponential backoff, and the circuit breaker. A call sequence blocks the payments agent
    # for at most attempts * call_timeout + backoffs (defaults: about 6.6 s). The breaker opens
    # when, among at least min_calls charges/refunds (each counted once, retries included)
    # within the window, failure_rate of them failed (agents/circuit.py).
    payment_call_timeout: float = 2.0
    payment_attempts: int = 3
    payment_backoff: float = 0.2
    payment_breaker_min_calls: int = 10
    payment_breaker_failure_rate: float = 0.5
    payment_breaker_window: float = 30.0
    payment_breaker_cooldown: float = 15.0
    # Order saga: each step's deadline (seconds) and how often the deadline timer looks.
    # The charge deadline must outlast the payments agent's own provider retries.
    saga_reserve_timeout: float = 10.0
    saga_charge_timeout: float = 30.0
    saga_refund_timeout: float = 30.0
    saga_tick: float = 0.5
    # While the breaker is open a charge waits (until its deadline), re-sent this often; a
    # failed refund is re-sent after refund_backoff * 2^n seconds, at most refund_max_backoff.
    saga_charge_retry: float = 1.0
    saga_refund_backoff: float = 1.0
    saga_refund_max_backoff: float = 300.0
    # A seller is told when a product's stock falls below this (0: never); a seller's own
    # threshold (PATCH /v1/users/me stockLowThreshold) overrides it.
    stock_low_threshold: int = 5
    # Analytics (agents/analytics): how far behind its partition's newest event an event may
    # be and still count (seconds), how often windows are closed on idle partitions, and the
    # least time between two dashboard snapshots of one scope.
    analytics_grace: float = 120.0
    analytics_tick: float = 1.0
    analytics_snapshot_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.env not in ("dev", "prod"):
            raise ConfigError(f"MERCATO_ENV must be 'dev' or 'prod', got {self.env!r}")
        if self.access_log not in ("errors", "all"):
            raise ConfigError(
                f"MERCATO_ACCESS_LOG must be 'errors' or 'all', got {self.access_log!r}"
            )
        for name, url, scheme in (
            ("MERCATO_KAFKA_URL", self.kafka_url, "kafka"),
            ("MERCATO_MONGO_URL", self.mongo_url, "mongodb"),
            ("MERCATO_REDIS_URL", self.redis_url, "redis"),
        ):
            if not urlsplit(url).scheme.startswith(scheme):
                raise ConfigError(f"{name} must be a {scheme}:// URL, got {mask_dsn(url)!r}")
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
        self._check_jwt_algorithm()

    def _check_jwt_algorithm(self) -> None:
        # Only the combination is checked here; the keys themselves are read and checked by
        # the gateway at start (gateway/signing.py), so workers never need the private key.
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
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("jwt_secret", "jwt_previous_secrets", "jwt_private_key"):
                value = "***" if value else ""
            elif field.name.endswith("_url"):
                value = mask_dsn(value)
            elif isinstance(value, Path):
                value = str(value)
            out[field.name] = value
        return out

    def to_env(self) -> dict[str, str]:
        """``MERCATO_*`` variables that make ``from_env`` rebuild these settings (for children)."""
        env: dict[str, str] = {}
        for var, field in ENV_FIELDS.items():
            value = getattr(self, field)
            if isinstance(value, bool):
                env[var] = "true" if value else "false"
            else:
                env[var] = str(value)
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``MERCATO_*`` variables; dev defaults need nothing set."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        for var, field in ENV_FIELDS.items():
            if var not in env:
                continue
            raw = env[var]
            kind = _FIELD_TYPES[field]
            if kind is bool:
                kwargs[field] = _env_bool(raw, var)
            elif kind in (int, float):
                kwargs[field] = _env_number(raw, var, kind, allow_zero=field in _ZERO_MEANS_OFF)
            elif kind is Path:
                kwargs[field] = Path(raw)
            else:
                kwargs[field] = raw
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


# Every variable Mercato reads, and the settings field it sets.
ENV_FIELDS: dict[str, str] = {
    "MERCATO_ENV": "env",
    "MERCATO_KAFKA_URL": "kafka_url",
    "MERCATO_MONGO_URL": "mongo_url",
    "MERCATO_REDIS_URL": "redis_url",
    "MERCATO_REDIS_MAX_CONNECTIONS": "redis_max_connections",
    "MERCATO_REDIS_POOL_TIMEOUT": "redis_pool_timeout",
    "MERCATO_HTTP_HOST": "http_host",
    "MERCATO_HTTP_PORT": "http_port",
    "MERCATO_HTTP_HEADER_TIMEOUT": "http_header_timeout",
    "MERCATO_DATA_DIR": "data_dir",
    "MERCATO_JWT_SECRET": "jwt_secret",
    "MERCATO_JWT_PREVIOUS_SECRETS": "jwt_previous_secrets",
    "MERCATO_JWT_ALGORITHM": "jwt_algorithm",
    "MERCATO_JWT_PRIVATE_KEY": "jwt_private_key",
    "MERCATO_JWT_PREVIOUS_PUBLIC_KEYS": "jwt_previous_public_keys",
    "MERCATO_JWT_ISSUER": "jwt_issuer",
    "MERCATO_JWT_AUDIENCE": "jwt_audience",
    "MERCATO_ACCESS_TOKEN_TTL": "access_token_ttl",
    "MERCATO_SESSION_MAX_AGE": "session_max_age",
    "MERCATO_TOPIC_PREFIX": "topic_prefix",
    "MERCATO_APP_ID": "app_id",
    "MERCATO_KAFKA_REPLICATION": "kafka_replication",
    "MERCATO_KAFKA_IDEMPOTENT": "kafka_idempotent",
    "MERCATO_KAFKA_EMPTY_FETCH_BACKOFF_MS": "kafka_empty_fetch_backoff_ms",
    "MERCATO_KAFKA_IDLE_FETCH_BACKOFF_MS": "kafka_idle_fetch_backoff_ms",
    "MERCATO_COMMAND_TIMEOUT": "command_timeout",
    "MERCATO_WORKER_SESSION_TIMEOUT": "worker_session_timeout",
    "MERCATO_PUSH_QUEUE_SIZE": "push_queue_size",
    "MERCATO_SSE_HEARTBEAT": "sse_heartbeat",
    "MERCATO_LOG_LEVEL": "log_level",
    "MERCATO_LOG_JSON": "log_json",
    "MERCATO_ACCESS_LOG": "access_log",
    "MERCATO_MAX_UPLOAD_BYTES": "max_upload_bytes",
    "MERCATO_FILE_QUOTA_BYTES": "file_quota_bytes",
    "MERCATO_RATE_LIMIT_ENABLED": "rate_limit_enabled",
    "MERCATO_RATE_LIMITS": "rate_limits",
    "MERCATO_TRUST_PROXY": "trust_proxy",
    "MERCATO_TLS_TERMINATED": "tls_terminated",
    "MERCATO_CORS_ORIGINS": "cors_origins",
    "MERCATO_PAYMENT_CALL_TIMEOUT": "payment_call_timeout",
    "MERCATO_PAYMENT_ATTEMPTS": "payment_attempts",
    "MERCATO_PAYMENT_BACKOFF": "payment_backoff",
    "MERCATO_PAYMENT_BREAKER_MIN_CALLS": "payment_breaker_min_calls",
    "MERCATO_PAYMENT_BREAKER_FAILURE_RATE": "payment_breaker_failure_rate",
    "MERCATO_PAYMENT_BREAKER_WINDOW": "payment_breaker_window",
    "MERCATO_PAYMENT_BREAKER_COOLDOWN": "payment_breaker_cooldown",
    "MERCATO_SAGA_RESERVE_TIMEOUT": "saga_reserve_timeout",
    "MERCATO_SAGA_CHARGE_TIMEOUT": "saga_charge_timeout",
    "MERCATO_SAGA_REFUND_TIMEOUT": "saga_refund_timeout",
    "MERCATO_SAGA_TICK": "saga_tick",
    "MERCATO_SAGA_CHARGE_RETRY": "saga_charge_retry",
    "MERCATO_SAGA_REFUND_BACKOFF": "saga_refund_backoff",
    "MERCATO_SAGA_REFUND_MAX_BACKOFF": "saga_refund_max_backoff",
    "MERCATO_STOCK_LOW_THRESHOLD": "stock_low_threshold",
    "MERCATO_ANALYTICS_GRACE": "analytics_grace",
    "MERCATO_ANALYTICS_TICK": "analytics_tick",
    "MERCATO_ANALYTICS_SNAPSHOT_INTERVAL": "analytics_snapshot_interval",
}
_FIELD_TYPES: dict[str, Any] = {
    "kafka_empty_fetch_backoff_ms": int, "kafka_idle_fetch_backoff_ms": int,
    "http_port": int, "access_token_ttl": int, "session_max_age": int,
    "kafka_replication": int, "push_queue_size": int,
    "command_timeout": float, "worker_session_timeout": float, "sse_heartbeat": float,
    "http_header_timeout": float, "redis_max_connections": int, "redis_pool_timeout": float,
    "kafka_idempotent": bool, "log_json": bool, "data_dir": Path,
    "max_upload_bytes": int, "file_quota_bytes": int,
    "rate_limit_enabled": bool, "trust_proxy": bool, "tls_terminated": bool,
    "payment_call_timeout": float, "payment_attempts": int, "payment_backoff": float,
    "payment_breaker_min_calls": int, "payment_breaker_failure_rate": float,
    "payment_breaker_window": float,
    "payment_breaker_cooldown": float,
    "stock_low_threshold": int,
}
_FIELD_TYPES.update(dict.fromkeys(
    ("saga_reserve_timeout", "saga_charge_timeout", "saga_refund_timeout", "saga_tick",
     "saga_charge_retry", "saga_refund_backoff", "saga_refund_max_backoff"), float
))
_FIELD_TYPES.update(dict.fromkeys(
    ("analytics_grace", "analytics_tick", "analytics_snapshot_interval"), float
))
_FIELD_TYPES.update({f: str for f in ENV_FIELDS.values() if f not in _FIELD_TYPES})
# Numeric settings for which 0 is meaningful ("off"); every other number must be positive.
_ZERO_MEANS_OFF = frozenset({
    "kafka_empty_fetch_backoff_ms", "kafka_idle_fetch_backoff_ms", "stock_low_threshold",
    "http_header_timeout",
})
