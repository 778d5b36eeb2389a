"""A dev stack's record in its data dir: what ``mercato dev`` runs, found by the other commands.

``mercato dev`` holds an exclusive lock on ``dev.lock`` while it runs and writes where
its services listen to ``ports.json``; ``mercato admin create`` and ``mercato topics
create`` read both, so a developer needs to copy no URL from the banner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import get_args

from config import Settings
from mercato.embedded import Broker, Endpoints, endpoints_for

PORTS_FILE = "ports.json"
LOCK_FILE = "dev.lock"
SERVICES = ("kafka", "mongo", "redis")
URL_VARIABLES = ("MERCATO_KAFKA_URL", "MERCATO_MONGO_URL", "MERCATO_REDIS_URL")
DEFAULT_DATA_DIR = Path(".mercato")
_LOCK_ATTEMPTS = 20  # x 25 ms: a probe by running() holds the lock for microseconds


class DevBusy(RuntimeError):
    """Another ``mercato dev`` already runs on this data dir."""


class NoDevStack(RuntimeError):
    """No URL was configured and no ``mercato dev`` runs on the data dir."""


@dataclasses.dataclass(frozen=True, slots=True)
class DevRecord:
    """Where a dev stack listens: its services, its gateway and its broker kind."""

    ports: Mapping[str, int]
    http_port: int
    broker: Broker

    def endpoints(self) -> Endpoints:
        """The URLs of the stack's services."""
        return endpoints_for(self.ports, self.broker)


def remembered_ports(data_dir: Path) -> dict[str, int]:
    """The service ports of the last run on ``data_dir`` (none if it never ran)."""
    try:
        raw = json.loads((data_dir / PORTS_FILE).read_text())
        return {name: int(raw[name]) for name in SERVICES if name in raw}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def write_record(data_dir: Path, record: DevRecord) -> None:
    """Remember where this run listens, for the next run and for the other commands."""
    document = {**record.ports, "http": record.http_port, "broker": record.broker}
    path = data_dir / PORTS_FILE
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    partial.replace(path)  # a reader never sees half a file


def read_record(data_dir: Path) -> DevRecord | None:
    """The record of ``data_dir``, or None if there is none or it is not whole."""
    try:
        raw = json.loads((data_dir / PORTS_FILE).read_text())
        ports = {name: int(raw[name]) for name in SERVICES}
        http_port, broker = int(raw["http"]), raw["broker"]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if broker not in get_args(Broker):
        return None
    return DevRecord(ports, http_port, broker)


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's lock for a whole ``mercato dev`` run; DevBusy if another has it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOCK_FILE).open("w") as lock:
        for attempt in range(_LOCK_ATTEMPTS):
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == _LOCK_ATTEMPTS - 1:
                    raise DevBusy(
                        f"another `mercato dev` is already running on {data_dir}"
                    ) from None
                time.sleep(0.025)
        yield


def running(data_dir: Path) -> bool:
    """Whether a ``mercato dev`` holds the lock of ``data_dir`` right now."""
    # The lock, not a pid or a port: the kernel releases it however its holder died,
    # so a crashed run never looks alive and a reused pid or port never fools us.
    try:
        lock = (data_dir / LOCK_FILE).open("r")
    except FileNotFoundError:
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def dev_environment(
    data_dir: Path, record: DevRecord, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of the dev stack's processes (its worker, gateway and clients)."""
    endpoints = record.endpoints()
    env = dict(os.environ if base is None else base)
    env.update(
        MERCATO_ENV="dev",
        MERCATO_KAFKA_URL=endpoints.kafka_url,
        MERCATO_MONGO_URL=endpoints.mongo_url,
        MERCATO_REDIS_URL=endpoints.redis_url,
        MERCATO_HTTP_PORT=str(record.http_port),
        MERCATO_DATA_DIR=str(data_dir.absolute()),
        PYTHONUNBUFFERED="1",
    )
    if endpoints.broker == "tansu":
        env["MERCATO_KAFKA_IDEMPOTENT"] = "false"  # Tansu has no idempotent producer
    env.setdefault("MERCATO_LOG_JSON", "false")  # readable lines in the dev logs
    # One developer's browser, scripts and demo sign-ups all come from 127.0.0.1: limits
    # stay on (their headers are visible) but the auth class is roomy.
    env.setdefault("MERCATO_RATE_LIMITS", "auth=120/60:60")
    return env


def client_settings(
    data_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings of a command that talks to the stack.

    The environment when it names a URL (or says prod); else the running dev stack of
    ``data_dir`` (default ``MERCATO_DATA_DIR``, else ``.mercato``), configured exactly as
    ``mercato dev`` configures its own worker and gateway (same JWT secret and app id).
    """
    env = dict(os.environ if environ is None else environ)
    if data_dir is not None:
        env["MERCATO_DATA_DIR"] = str(data_dir)
    if any(env.get(name) for name in URL_VARIABLES) or env.get("MERCATO_ENV") == "prod":
        return Settings.from_env(env)
    where = Path(env.get("MERCATO_DATA_DIR") or DEFAULT_DATA_DIR).absolute()
    record = read_record(where) if running(where) else None
    if record is None:
        raise NoDevStack(
            f"no `mercato dev` is running on {where}: start `mercato dev`, pass --data-dir "
            "DIR of the one that runs, or set MERCATO_KAFKA_URL, MERCATO_MONGO_URL and "
            "MERCATO_REDIS_URL"
        )
    return Settings.from_env(dev_environment(where, record, env))
