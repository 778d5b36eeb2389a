"""The ``mercato`` command: schema export (and its committed copy), errors, exit codes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mercato.cli import export_schemas, main

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
