"""The ``mercato`` command: schema export (and its committed copy), errors, exit codes,
and how the commands that talk to the stack find a running ``mercato dev``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from config import Settings
from config.settings import dev_jwt_secret
from mercato.cli import export_schemas, main
from mercato.devstack import (
    URL_VARIABLES,
    DevBusy,
    DevRecord,
    client_settings,
    dev_environment,
    exclusive,
    read_record,
    running,
    write_record,
)
from mercato.embedded import Broker

DOCS_EVENTS = Path(__file__).resolve().parents[2] / "docs" / "events"


def test_schema_export_is_deterministic(tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in export_schemas(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in export_schemas(tmp_path / "b")}
    assert first == second
    assert "asyncapi.json" in first
    assert "user.registered.v1.json" in first


def test_committed_event_docs_match_the_code(tmp_path: Path) -> None:
    """docs/events is what data teams read; regenerate it with `make schemas` after a change."""
    generated = {p.name: p.read_text() for p in export_schemas(tmp_path)}
    committed = {p.name: p.read_text() for p in DOCS_EVENTS.glob("*.json")}
    assert sorted(committed) == sorted(generated), "run `make schemas` and commit docs/events"
    stale = [name for name in generated if committed[name] != generated[name]]
    assert not stale, f"stale schemas {stale}: run `make schemas` and commit docs/events"


def test_configuration_errors_exit_2_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MERCATO_ENV", "prod")
    monkeypatch.delenv("MERCATO_JWT_SECRET", raising=False)
    assert main(["topics", "create"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err
    assert "MERCATO_JWT_SECRET" in err
    assert "Traceback" not in err


def test_topics_create_against_a_dead_broker_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MERCATO_KAFKA_URL", f"kafka://127.0.0.1:{port}")
    monkeypatch.setenv("MERCATO_DATA_DIR", str(tmp_path))
    assert main(["topics", "create", "--timeout", "2"]) == 1
    assert "broker" in capsys.readouterr().err.lower()


def _without_stack_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*URL_VARIABLES, "MERCATO_ENV", "MERCATO_DATA_DIR", "MERCATO_APP_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("stale_record", [False, True])
def test_without_urls_or_a_dev_stack_the_cli_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stale_record: bool,
) -> None:
    _without_stack_urls(monkeypatch)
    if stale_record:  # a dev stack ran here once and is gone: its lock is free
        write_record(tmp_path, DevRecord({"kafka": 1, "mongo": 2, "redis": 3}, 8080, "noida"))
        (tmp_path / "dev.lock").touch()
    argv = ["admin", "create", "--email", "a@example.com", "--password", "long-enough-pw",
            "--data-dir", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"no `mercato dev` is running on {tmp_path}" in err
    assert "start `mercato dev`" in err
    assert "MERCATO_KAFKA_URL" in err


def test_the_data_dir_also_comes_from_mercato_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_stack_urls(monkeypatch)
    monkeypatch.setenv("MERCATO_DATA_DIR", str(tmp_path))
    assert main(["topics", "create", "--timeout", "2"]) == 1
    assert f"running on {tmp_path}" in capsys.readouterr().err


@pytest.mark.parametrize("broker", ["noida", "tansu"])
def test_a_running_dev_stack_configures_the_cli_as_it_configures_its_children(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, broker: Broker
) -> None:
    _without_stack_urls(monkeypatch)
    record = DevRecord({"kafka": 39111, "mongo": 37111, "redis": 36111}, 8111, broker)
    with exclusive(tmp_path):
        write_record(tmp_path, record)
        assert read_record(tmp_path) == record
        assert running(tmp_path)
        settings = client_settings(tmp_path)
    assert not running(tmp_path)
    assert settings.kafka_url == "kafka://127.0.0.1:39111"
    assert settings.mongo_url == "mongodb://127.0.0.1:37111/mercato?retryWrites=false"
    assert settings.redis_url == "redis://127.0.0.1:36111/0"
    assert settings.kafka_idempotent is (broker == "noida")
    assert settings.jwt_secret == dev_jwt_secret(tmp_path)
    assert settings.app_id == "mercato"
    assert settings == Settings.from_env(dev_environment(tmp_path, record))


def test_urls_in_the_environment_win_over_a_dev_stack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without_stack_urls(monkeypatch)
    monkeypatch.setenv("MERCATO_KAFKA_URL", "kafka://kafka.internal:9092")
    with exclusive(tmp_path):
        write_record(tmp_path, DevRecord({"kafka": 1, "mongo": 2, "redis": 3}, 8080, "noida"))
        settings = client_settings(tmp_path)
    assert settings.kafka_url == "kafka://kafka.internal:9092"
    assert settings.data_dir == tmp_path


def test_a_second_dev_on_one_data_dir_is_refused(tmp_path: Path) -> None:
    with exclusive(tmp_path), pytest.raises(DevBusy, match="already running"), exclusive(tmp_path):
        pass
