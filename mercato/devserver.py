"""``mercato dev``: the embedded stack, topics, one worker and one gateway, supervised.

The terminal shows the banner, the ready line and the children's warnings and errors;
everything else the children say goes to their logs under ``DATA_DIR/logs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import TextIO

from config import Settings
from mercato._follow import LogFollower
from mercato._procs import (
    describe_exit,
    free_port,
    log_size,
    log_tail,
    port_is_free,
    spawn,
    terminate,
)
from mercato.devstack import (
    DevBusy,
    DevRecord,
    dev_environment,
    exclusive,
    remembered_ports,
    write_record,
)
from mercato.embedded import Broker, EmbeddedStack, Endpoints, ServiceFailed

# Fixed, uncommon defaults so a restart finds the same ports and a developer's own
# Kafka/MongoDB/Redis on the standard ports is left alone.
DEFAULT_PORTS = {"kafka": 39092, "mongo": 37017, "redis": 36379}
READY_TIMEOUT = 60.0
TOPICS_TIMEOUT = 30.0
CHILD_GRACE = 15.0
# Once the stack is up, a worker or gateway that dies is started again after these waits
# (the last one repeats); one that then runs this long starts over at the first wait.
RESTART_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STABLE_SECONDS = 60.0
DEMO_USERS = (
    ("seller", "seller@example.com", "Demo Seller"),
    ("buyer", "buyer@example.com", "Demo Buyer"),
)
DEMO_PASSWORD = "mercato-demo-123"  # noqa: S105 - a published demo account, not a secret


@dataclasses.dataclass(frozen=True, slots=True)
class DevOptions:
    """What ``mercato dev`` was asked for."""

    port: int = 8080
    data_dir: Path = Path(".mercato")
    broker: Broker = "noida"
    reset: bool = False
    demo: bool = False


class DevFailed(RuntimeError):
    """The dev stack could not start or a child died; the message says which and why."""


@dataclasses.dataclass(slots=True)
class _Child:
    name: str
    log: Path
    since: int
    proc: subprocess.Popen[bytes]
    started: float = dataclasses.field(default_factory=time.monotonic)
    # Restarts in a row without a stable run, and when the next one is due (while dead).
    restarts: int = 0
    due: float | None = None

    def tail(self) -> str:
        return log_tail(self.log, since=self.since)


def _start_child(name: str, logs: Path, env: dict[str, str]) -> _Child:
    log = logs / f"{name}.log"
    since = log_size(log)
    return _Child(name, log, since, spawn([sys.executable, "-m", "mercato", name], log, env=env))


def _restart_dead(children: list[_Child], logs: Path, env: dict[str, str], out: TextIO) -> None:
    """Start a dead worker or gateway again, with backoff, and say so.

    A developer killing the worker to see what happens (or a crash) should not have to
    restart the whole stack: Kafka keeps what the worker had not processed, and its tables
    recover from their changelogs. A child that keeps dying waits longer each time.
    """
    now = time.monotonic()
    for index, child in enumerate(children):
        code = child.proc.poll()
        if code is None:
            continue
        if child.due is None:
            if now - child.started >= STABLE_SECONDS:
                child.restarts = 0
            delay = RESTART_BACKOFF[min(child.restarts, len(RESTART_BACKOFF) - 1)]
            child.due = now + delay
            _say(out, f"mercato: {child.name} {describe_exit(code)}; starting it again in "
                      f"{delay:g}s (its log: {child.log})")
        elif now >= child.due:
            again = _start_child(child.name, logs, env)
            again.restarts = child.restarts + 1
            children[index] = again
            _say(out, f"mercato: {child.name} started again (pid {again.proc.pid})")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM, and SIGHUP of a closed terminal, behave like Ctrl-C so that one code path
    # stops everything in order (dying of them would leave the children to the kernel).
    raise KeyboardInterrupt


def _reset(data_dir: Path) -> None:
    # The lock file stays: it is held by this very process.
    for entry in data_dir.iterdir():
        if entry.name == "dev.lock":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def service_ports(data_dir: Path) -> dict[str, int]:
    """The ports of the last run (else the defaults), a busy one replaced by a free one."""
    remembered = remembered_ports(data_dir)
    ports: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        port = remembered.get(name, default)
        if not port_is_free(port) or port in ports.values():
            port = free_port()
        ports[name] = port
    return ports


def _ready(port: int) -> bool:
    url = f"http://127.0.0.1:{port}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _check_children(children: list[_Child]) -> None:
    for child in children:
        code = child.proc.poll()
        if code is not None:
            raise DevFailed(
                f"{child.name} {describe_exit(code)}; last lines of {child.log}:\n{child.tail()}"
            )


def _wait_http(port: int, children: list[_Child]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not _ready(port):
        _check_children(children)
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {c.log}\n{c.tail()}" for c in children)
            raise DevFailed(f"/health/ready did not answer 200 within {READY_TIMEOUT:g}s\n{tails}")
        time.sleep(0.25)


def _register_demo(port: int, out: TextIO) -> None:
    out.write("demo accounts (password for both: " + DEMO_PASSWORD + ")\n")
    for role, email, name in DEMO_USERS:
        body = json.dumps({"email": email, "password": DEMO_PASSWORD, "name": name, "role": role})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/auth/register",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - fixed http URL
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
            detail = exc.read().decode("utf-8", "replace")[:300]
        else:
            detail = ""
        if status in (200, 201):
            out.write(f"  {role:<6} {email}  registered\n")
        elif status == 409:
            out.write(f"  {role:<6} {email}  already registered\n")
        else:
            out.write(f"  {role:<6} {email}  NOT registered: HTTP {status} {detail}\n")


def _banner(options: DevOptions, endpoints: Endpoints, elapsed: float, out: TextIO) -> None:
    base = f"http://127.0.0.1:{options.port}"
    kafka = endpoints.kafka_url.removeprefix("kafka://")
    rows = [
        ("API", f"{base}/v1"),
        ("Docs", f"{base}/docs"),
        ("Dashboard", f"{base}/dashboard"),
        ("AsyncAPI", f"{base}/asyncapi.json"),
        ("Kafka", f"{kafka} ({endpoints.broker})"),
        ("MongoDB", endpoints.mongo_url),
        ("Redis", endpoints.redis_url),
        ("Logs", str(options.data_dir.absolute() / "logs")),
    ]
    for label, value in rows:
        out.write(f"  {label:<10} {value}\n")
    out.write(f"mercato ready in {elapsed:.1f}s: {base}\n")
    out.flush()


def _supervise(
    options: DevOptions,
    stack: EmbeddedStack,
    record: DevRecord,
    children: list[_Child],
    out: TextIO,
) -> None:
    started = time.monotonic()
    out.write(f"mercato dev: starting in {options.data_dir} (Ctrl-C stops it)\n")
    out.flush()
    endpoints = stack.start()
    env = dev_environment(options.data_dir, record)
    # Built once here so the dev JWT secret file is created before two children race for it.
    settings = Settings.from_env(env)
    from streams.admin import TopicMismatch, ensure_topics

    try:
        asyncio.run(asyncio.wait_for(ensure_topics(settings), TOPICS_TIMEOUT))
    except TopicMismatch as exc:
        raise DevFailed(str(exc)) from None  # says what to do; a traceback would bury it
    follower = LogFollower(out)
    logs = options.data_dir.absolute() / "logs"
    try:
        for name in ("worker", "gateway"):
            follower.add(name, logs / f"{name}.log")
            children.append(_start_child(name, logs, env))
        follower.start()
        # Until the stack is ready, a child that dies is a failure to start: say why, stop.
        _wait_http(options.port, children)
        _banner(options, endpoints, time.monotonic() - started, out)
        if options.demo:
            _register_demo(options.port, out)
        while True:
            _restart_dead(children, logs, env, out)
            time.sleep(0.5)
    finally:
        follower.stop()


def _say(out: TextIO, line: str) -> None:
    # The terminal may be gone (SIGHUP): that must not skip stopping the children.
    with contextlib.suppress(OSError):
        out.write(line + "\n")
        out.flush()


def _report(exc: BaseException) -> int:
    if isinstance(exc, TimeoutError):
        sys.stderr.write(f"mercato: creating topics took longer than {TOPICS_TIMEOUT:g}s\n")
    else:
        sys.stderr.write(f"mercato: {exc}\n")
    sys.stderr.flush()
    return 1


def run(options: DevOptions, out: TextIO = sys.stdout) -> int:
    """Run the dev stack until Ctrl-C/SIGTERM (exit 0) or a failure (exit 1)."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    data_dir = options.data_dir.absolute()
    options = dataclasses.replace(options, data_dir=data_dir)
    children: list[_Child] = []
    code = 0
    try:
        with exclusive(data_dir):
            if options.reset:
                _reset(data_dir)
            if not port_is_free(options.port):
                raise DevFailed(f"HTTP port {options.port} is in use; pass --port")
            record = DevRecord(service_ports(data_dir), options.port, options.broker)
            write_record(data_dir, record)
            stack = EmbeddedStack(data_dir, broker=options.broker, ports=record.ports,
                                  startup_timeout=READY_TIMEOUT)
            try:
                _supervise(options, stack, record, children, out)
            except KeyboardInterrupt:
                pass
            except (DevFailed, ServiceFailed, TimeoutError) as exc:
                code = _report(exc)  # before the shutdown chatter, so it is easy to find
            finally:
                # Nothing may interrupt the ordered shutdown: gateway, worker, then services.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                _say(out, "mercato: stopping")
                for child in reversed(children):
                    terminate(child.proc, CHILD_GRACE)
                stack.stop()
                _say(out, "mercato: stopped")
    except KeyboardInterrupt:
        return 0  # interrupted before anything was started
    except (DevFailed, DevBusy) as exc:
        return _report(exc)
    return code
