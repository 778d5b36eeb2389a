"""Settings: environment parsing, validation, the dev secret and log-safe views."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from config import ConfigError, Settings, mask_dsn

STRONG = "s" * 32


def test_defaults_need_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.env == "dev"
    assert settings.kafka_bootstrap == ["127.0.0.1:9092"]
    assert settings.mongo_database == "mercato"
    assert settings.topic("users") == "mercato.users"
    assert len(settings.jwt_secret) >= 32
    assert (tmp_path / ".mercato" / "jwt-secret").read_text() == settings.jwt_secret


def test_env_values_are_parsed(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "MERCATO_DATA_DIR": str(tmp_path),
        "MERCATO_KAFKA_URL": "kafka://a:1,b:2",
        "MERCATO_MONGO_URL": "mongodb://m:27017/shop",
        "MERCATO_HTTP_PORT": "9000",
        "MERCATO_COMMAND_TIMEOUT": "2.5",
        "MERCATO_KAFKA_IDEMPOTENT": "false",
        "MERCATO_LOG_JSON": "yes",
        "MERCATO_TOPIC_PREFIX": "x.",
    })
    assert settings.kafka_bootstrap == ["a:1", "b:2"]
    assert settings.mongo_database == "shop"
    assert settings.http_port == 9000
    assert settings.command_timeout == 2.5
    assert settings.kafka_idempotent is False
    assert settings.log_json is True
    assert settings.topic("users") == "x.users"
    assert settings.data_dir == tmp_path


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MERCATO_HTTP_PORT", "eighty"),
        ("MERCATO_HTTP_PORT", "-1"),
        ("MERCATO_COMMAND_TIMEOUT", "soon"),
        ("MERCATO_PUSH_QUEUE_SIZE", "1.5"),
        ("MERCATO_KAFKA_IDEMPOTENT", "maybe"),
        ("MERCATO_LOG_JSON", ""),
        ("MERCATO_ENV", "staging"),
        ("MERCATO_KAFKA_URL", "http://localhost:9092"),
        ("MERCATO_MONGO_URL", "postgres://localhost/db"),
        ("MERCATO_REDIS_URL", "localhost:6379"),
        ("MERCATO_JWT_ALGORITHM", "HS512"),
        ("MERCATO_JWT_ALGORITHM", "none"),
        ("MERCATO_JWT_ALGORITHM", "eddsa"),
        ("MERCATO_PAYMENT_BREAKER_FAILURE_RATE", "1.5"),
        ("MERCATO_HTTP_HEADER_TIMEOUT", "-1"),
        ("MERCATO_REDIS_MAX_CONNECTIONS", "0"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({"MERCATO_DATA_DIR": str(tmp_path), variable: value})


@pytest.mark.parametrize("secret", [None, "", "short-secret"])
def test_prod_requires_a_strong_secret(tmp_path: Path, secret: str | None) -> None:
    env = {"MERCATO_ENV": "prod", "MERCATO_DATA_DIR": str(tmp_path)}
    if secret is not None:
        env["MERCATO_JWT_SECRET"] = secret
    with pytest.raises(ConfigError, match="MERCATO_JWT_SECRET"):
        Settings.from_env(env)
    assert not (tmp_path / "jwt-secret").exists()


def test_prod_accepts_a_strong_secret(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"MERCATO_ENV": "prod", "MERCATO_JWT_SECRET": STRONG, "MERCATO_DATA_DIR": str(tmp_path)}
    )
    assert settings.jwt_secret == STRONG
    assert not (tmp_path / "jwt-secret").exists()


def test_prod_keeps_ended_orders_at_least_as_long_as_an_idempotency_key(tmp_path: Path) -> None:
    env = {"MERCATO_ENV": "prod", "MERCATO_JWT_SECRET": STRONG, "MERCATO_DATA_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="MERCATO_SAGA_RETENTION"):
        Settings.from_env({**env, "MERCATO_SAGA_RETENTION": "3600"})
    assert Settings.from_env({**env, "MERCATO_SAGA_RETENTION": "86400"}).saga_retention == 86400
    # Dev and the tests may keep them for seconds.
    assert Settings.from_env({"MERCATO_DATA_DIR": str(tmp_path), "MERCATO_SAGA_RETENTION": "4"})


def test_dev_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    env = {"MERCATO_DATA_DIR": str(tmp_path / "data")}
    first = Settings.from_env(env)
    second = Settings.from_env(env)
    path = tmp_path / "data" / "jwt-secret"
    assert first.jwt_secret == second.jwt_secret
    assert len(first.jwt_secret) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_dev_secret_from_env_wins(tmp_path: Path) -> None:
    settings = Settings.from_env({"MERCATO_DATA_DIR": str(tmp_path), "MERCATO_JWT_SECRET": STRONG})
    assert settings.jwt_secret == STRONG
    assert not (tmp_path / "jwt-secret").exists()


@pytest.mark.parametrize(
    ("url", "hidden"),
    [
        ("mongodb://app:hunter2@db.internal:27017/mercato", "hunter2"),
        ("redis://:s3cret@cache:6379/0", "s3cret"),
        ("kafka://user:p%40ss@broker:9092", "p%40ss"),
    ],
)
def test_mask_dsn_hides_passwords(url: str, hidden: str) -> None:
    masked = mask_dsn(url)
    assert hidden not in masked
    assert "***" in masked


def test_mask_dsn_keeps_urls_without_password() -> None:
    assert mask_dsn("mongodb://db:27017/mercato") == "mongodb://db:27017/mercato"


def test_safe_dict_and_repr_never_show_secrets(tmp_path: Path) -> None:
    settings = Settings(
        env="prod",
        jwt_secret=STRONG,
        mongo_url="mongodb://app:hunter2@db:27017/mercato",
        data_dir=tmp_path,
    )
    safe = settings.safe_dict()
    assert STRONG not in str(safe)
    assert "hunter2" not in str(safe)
    assert safe["jwt_secret"] == "***"
    assert safe["data_dir"] == str(tmp_path)
    assert STRONG not in repr(settings)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.http_port = 1  # type: ignore[misc]


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_asymmetric_algorithm_needs_a_private_key(tmp_path: Path, algorithm: str) -> None:
    env = {"MERCATO_DATA_DIR": str(tmp_path), "MERCATO_JWT_ALGORITHM": algorithm}
    for missing in ({}, {"MERCATO_JWT_PRIVATE_KEY": "  "}):
        with pytest.raises(ConfigError, match="MERCATO_JWT_PRIVATE_KEY") as caught:
            Settings.from_env(env | missing)
        assert f"MERCATO_JWT_ALGORITHM={algorithm}" in str(caught.value)
        assert "openssl genpkey" in str(caught.value)


@pytest.mark.parametrize(
    "variable", ["MERCATO_JWT_PRIVATE_KEY", "MERCATO_JWT_PREVIOUS_PUBLIC_KEYS"]
)
def test_keys_without_an_asymmetric_algorithm_are_a_mistake(tmp_path: Path, variable: str) -> None:
    # Set but silently unused, a key would leave tokens HS256 while the operator thinks not.
    with pytest.raises(ConfigError, match="MERCATO_JWT_ALGORITHM=EdDSA, ES256 or RS256"):
        Settings.from_env({"MERCATO_DATA_DIR": str(tmp_path), variable: "/etc/jwt.pem"})


PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIP\n-----END PRIVATE KEY-----\n"


def test_jwt_key_settings_survive_to_env_and_stay_out_of_logs(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        jwt_secret=STRONG,
        jwt_algorithm="EdDSA",
        jwt_private_key=PEM,
        jwt_previous_public_keys="/keys/a.pub.pem,/keys/b.pub.pem",
    )
    # Children (worker, gateway) are configured through the environment, PEM newlines included.
    rebuilt = Settings.from_env(settings.to_env())
    assert rebuilt == settings
    assert rebuilt.jwt_private_key == PEM
    assert PEM not in repr(settings)
    assert PEM not in str(settings.safe_dict())
    assert settings.safe_dict()["jwt_private_key"] == "***"
    assert settings.safe_dict()["jwt_previous_public_keys"] == "/keys/a.pub.pem,/keys/b.pub.pem"


def test_hs256_stays_the_default(tmp_path: Path) -> None:
    settings = Settings.from_env({"MERCATO_DATA_DIR": str(tmp_path)})
    assert settings.jwt_algorithm == "HS256"
    assert settings.to_env()["MERCATO_JWT_ALGORITHM"] == "HS256"
    assert settings.to_env()["MERCATO_JWT_PRIVATE_KEY"] == ""


def test_a_header_timeout_of_zero_switches_the_deadline_off(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"MERCATO_DATA_DIR": str(tmp_path), "MERCATO_HTTP_HEADER_TIMEOUT": "0"}
    )
    assert settings.http_header_timeout == 0
