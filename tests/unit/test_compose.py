"""The production compose file and Dockerfile agree with the code they run.

Docker is not needed: the files are parsed and checked against the settings declarations,
and the compose environment is fed to the real ``Settings.from_env``.
"""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from config.settings import ENV_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

APP_SERVICES = ("topics", "worker", "gateway")
BACKING_SERVICES = ("kafka", "mongo", "redis")
REQUIRED_IN_PROD = (
    "MERCATO_ENV",
    "MERCATO_JWT_SECRET",
    "MERCATO_KAFKA_URL",
    "MERCATO_MONGO_URL",
    "MERCATO_REDIS_URL",
)
DATA_DIR = "/var/lib/mercato"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: str) -> dict[str, str]:
    env = _services()[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: use the mapping form of environment"
    return env


def _interpolate(value: str, host_env: dict[str, str]) -> str:
    """Resolve compose ``${...}`` expressions the way ``docker compose`` would."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        present = name in host_env and (host_env[name] != "" or not (op or "").startswith(":"))
        if present:
            return host_env[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise LookupError(f"{name} is required: {arg}")
        return ""

    return INTERPOLATION.sub(replace, value)


def _command(service: str) -> list[str]:
    command = _services()[service]["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def _healthcheck_text(service: str) -> str:
    check = _services()[service].get("healthcheck")
    assert check is not None, f"{service} has no healthcheck"
    assert not check.get("disable", False), f"{service} disables its healthcheck"
    test = check["test"]
    return test if isinstance(test, str) else " ".join(test)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a line continuation"
    pairs = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        pairs.append((keyword.upper(), args.strip()))
    return pairs


def _dockerfile(keyword: str) -> list[str]:
    return [args for key, args in _dockerfile_instructions() if key == keyword]


def _runtime_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (key, _) in enumerate(instructions) if key == "FROM")
    return instructions[last_from:]


def test_every_service_is_declared() -> None:
    assert set(_services()) >= {*BACKING_SERVICES, *APP_SERVICES}
    assert "version" not in _compose(), "the Compose spec has no version key"


@pytest.mark.parametrize(
    ("service", "subcommand"),
    [("topics", ["topics", "create"]), ("worker", ["worker"]), ("gateway", ["gateway"])],
)
def test_app_services_run_the_built_image(service: str, subcommand: list[str]) -> None:
    spec = _services()[service]
    build = spec["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert context in (".", "./")
    assert _command(service) == subcommand
    assert "entrypoint" not in spec, "the image's ENTRYPOINT is mercato"


def test_app_services_share_one_image_name() -> None:
    images = {_services()[service].get("image") for service in APP_SERVICES}
    assert None not in images, "every role runs the same named image"
    assert len(images) == 1, "one image, built once, for every role"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_prod_settings_are_all_set(service: str) -> None:
    env = _environment(service)
    for name in REQUIRED_IN_PROD:
        assert env.get(name), f"{service} does not set {name}"
    assert env["MERCATO_ENV"] == "prod"
    assert all(isinstance(value, str) for value in env.values()), "quote env values"


def test_jwt_secret_has_no_default() -> None:
    for service in APP_SERVICES:
        secret = _environment(service)["MERCATO_JWT_SECRET"]
        match = INTERPOLATION.fullmatch(secret)
        assert match is not None, "the secret must come from the operator's environment"
        assert match["name"] == "MERCATO_JWT_SECRET"
        assert match["op"] in (":?", "?"), "an unset secret must stop compose, not default"
        with pytest.raises(LookupError):
            _interpolate(secret, {})


def test_every_mercato_variable_is_one_settings_reads() -> None:
    known = set(ENV_FIELDS)
    assert set(REQUIRED_IN_PROD) <= known, "the settings declare too little"
    for path in (COMPOSE_FILE, DOCKERFILE):
        used = set(re.findall(r"MERCATO_[A-Z0-9_]+", path.read_text()))
        assert used, f"{path.name} mentions no MERCATO_ variable"
        assert used <= known, f"{path.name} uses unknown variables: {sorted(used - known)}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_environment_builds_valid_prod_settings(service: str) -> None:
    host_env = {"MERCATO_JWT_SECRET": secrets.token_urlsafe(36)}
    env = {name: _interpolate(value, host_env) for name, value in _environment(service).items()}
    assert len(env["MERCATO_JWT_SECRET"]) == 48
    settings = Settings.from_env(env)
    assert settings.env == "prod"
    assert settings.jwt_secret == host_env["MERCATO_JWT_SECRET"]
    assert str(settings.data_dir) == DATA_DIR
    assert settings.http_host == "0.0.0.0"


def test_backend_urls_point_at_compose_services() -> None:
    services = _services()
    env = _environment("worker")
    for var, service, port in (
        ("MERCATO_KAFKA_URL", "kafka", 9092),
        ("MERCATO_MONGO_URL", "mongo", 27017),
        ("MERCATO_REDIS_URL", "redis", 6379),
    ):
        url = urlsplit(env[var])
        assert service in services, var
        assert url.hostname == service, var
        assert url.port == port, var
    # Clients follow what the broker advertises and what the replica set calls its member.
    kafka_env = services["kafka"]["environment"]
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    replica_set = parse_qs(urlsplit(env["MERCATO_MONGO_URL"]).query)["replicaSet"]
    mongo_command = _services()["mongo"]["command"]
    assert mongo_command[mongo_command.index("--replSet") + 1] == replica_set[0]
    assert "host: 'mongo:27017'" in _healthcheck_text("mongo")


def test_app_services_agree_on_environment() -> None:
    envs = [_environment(service) for service in APP_SERVICES]
    assert all(env == envs[0] for env in envs), "topics, worker and gateway must share one env"


def test_gateway_publishes_its_http_port() -> None:
    gateway = _services()["gateway"]
    http_port = _environment("gateway")["MERCATO_HTTP_PORT"]
    container_ports = [str(entry).rsplit(":", 1)[-1].split("/")[0] for entry in gateway["ports"]]
    assert container_ports == [http_port] == ["8080"]
    assert f"127.0.0.1:{http_port}/health/ready" in _healthcheck_text("gateway")


def test_only_the_gateway_publishes_ports() -> None:
    published = {name for name, spec in _services().items() if spec.get("ports")}
    assert published == {"gateway"}


@pytest.mark.parametrize("service", ["kafka", "mongo", "redis", "gateway"])
def test_long_running_services_have_healthchecks(service: str) -> None:
    assert _healthcheck_text(service)
    assert _services()[service]["restart"] == "unless-stopped"


def test_backing_services_keep_data_in_named_volumes() -> None:
    declared = set(_compose()["volumes"])
    for service in BACKING_SERVICES:
        sources = {str(v).split(":", 1)[0] for v in _services()[service]["volumes"]}
        assert sources & declared, f"{service} data is not in a named volume"


def test_worker_is_scalable_and_never_shares_its_state() -> None:
    worker = _services()["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    # RocksDB allows one process per store: replicas get one anonymous volume each.
    mounts = [v for v in worker.get("volumes", []) if DATA_DIR in str(v)]
    assert mounts, "the worker's data dir must be a volume (or tmpfs)"
    for mount in mounts:
        if isinstance(mount, str):
            assert mount == DATA_DIR, f"worker state must not be a shared volume: {mount}"
        else:
            assert mount.get("type") in ("volume", "tmpfs")
            assert not mount.get("source")
    assert worker["stop_grace_period"]


def test_depends_on_conditions() -> None:
    services = _services()
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["topics"]["restart"] == "no"
    for service in ("worker", "gateway"):
        depends = services[service]["depends_on"]
        assert depends["topics"]["condition"] == "service_completed_successfully"
        for backend in ("mongo", "redis"):
            assert depends[backend]["condition"] == "service_healthy"


def test_dockerfile_stages_use_the_slim_python_image() -> None:
    images = [args.split()[0] for args in _dockerfile("FROM")]
    assert len(images) >= 2, "multi-stage: build and runtime"
    assert set(images) == {"python:3.11-slim-bookworm"}


def test_dockerfile_installs_runtime_dependencies_only() -> None:
    installs = [args for args in _dockerfile("RUN") if "pip install" in args]
    assert any(re.search(r"pip install [^&|;]*\s\.(\s|$)", args) for args in installs)
    for args in installs:
        assert "[embedded" not in args
        assert "[dev" not in args
        assert "-e " not in args


def test_dockerfile_runtime_stage() -> None:
    runtime = _runtime_stage()
    users = [args for key, args in runtime if key == "USER"]
    assert users, "the runtime stage must switch user"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(key == "EXPOSE" and "8080" in args.split() for key, args in runtime)
    assert any(key == "VOLUME" and DATA_DIR in args for key, args in runtime)
    assert any(key == "ENV" and "PYTHONUNBUFFERED=1" in args for key, args in runtime)
    assert any(
        key == "COPY" and "--from=build" in args and "/opt/venv" in args for key, args in runtime
    )
    healthchecks = [args for key, args in runtime if key == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert "/health/live" in healthchecks[0]
    assert _dockerfile("ENTRYPOINT")[-1] == '["mercato"]'
    assert _dockerfile("CMD")[-1] == '["gateway"]'
