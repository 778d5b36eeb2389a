"""Session-wide real services and per-test isolated settings.

The embedded services are never optional: if they cannot start, every test that
needs them errors with the service's log tail instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from config import Settings
from mercato.embedded import EmbeddedStack, Endpoints
from streams.admin import ensure_topics
from streams.kafka_compat import apply_empty_fetch_backoff

# 48 characters: comfortably over the 32 that prod requires.
TEST_JWT_SECRET = "mercato-test-secret-not-for-production-use-00000"


# Hypothesis' per-example deadline (200 ms) and its too-slow health check are timed
# assertions: on the shared 2-core machine a loaded moment fails them with nothing wrong
# (an analytics report property took 315 ms once, then 50 ms on the rerun). The tests
# check what the code computes; the benches in bench/ measure how fast.
hypothesis_settings.register_profile(
    "mercato", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("mercato")


def pytest_configure(config: pytest.Config) -> None:
    """Pace idle consumers in this process as the gateway and worker do (kafka_compat)."""
    apply_empty_fetch_backoff(Settings().kafka_empty_fetch_backoff_ms)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """Broker (noida), MongoDB-protocol server and Redis, started once per session."""
    embedded = EmbeddedStack(tmp_path_factory.mktemp("stack"), startup_timeout=60.0)
    with embedded as endpoints:
        yield endpoints


def _with_database(mongo_url: str, database: str) -> str:
    return urlsplit(mongo_url)._replace(path=f"/{database}").geturl()


def make_settings(endpoints: Endpoints, data_dir: Path) -> Settings:
    """Settings pointing at ``endpoints`` with a fresh topic prefix, app id and database."""
    run = uuid4().hex[:8]
    return Settings(
        env="dev",
        kafka_url=endpoints.kafka_url,
        mongo_url=_with_database(endpoints.mongo_url, f"test_{run}"),
        redis_url=endpoints.redis_url,
        data_dir=data_dir,
        jwt_secret=TEST_JWT_SECRET,
        topic_prefix=f"t{run}.",
        app_id=f"mercato-test-{run}",
        kafka_idempotent=endpoints.broker != "tansu",
        command_timeout=5.0,
        worker_session_timeout=10.0,
        log_json=False,
        # Every test client is 127.0.0.1, so per-IP auth limits would refuse unrelated
        # tests; the rate-limit tests switch it back on.
        rate_limit_enabled=False,
    )


@pytest.fixture
def settings(stack: Endpoints, tmp_path: Path) -> Settings:
    """Settings isolated to this test: own topics, consumer group, database and data dir."""
    return make_settings(stack, tmp_path)


@pytest.fixture
async def topics(settings: Settings) -> Settings:
    """``settings`` with every catalogue topic created."""
    await ensure_topics(settings)
    return settings
