# Mercato production image: one image, several roles chosen by the command
# (`gateway` by default, `worker`, `topics create`, `admin create ...`).
# Configured only by MERCATO_* environment variables; see docs/production.md.

# ---------------------------------------------------------------------------
# build: resolve and install the runtime dependencies into a venv.
# Every runtime dependency ships manylinux wheels for CPython 3.11 on x86_64
# (rocksdict, faust-streaming, uvloop, orjson, hiredis, argon2, pydantic-core),
# so no compiler is installed. On arm64, faust-streaming 0.15.3 may only be
# available as an sdist: if the build fails there, add
# `apt-get install -y --no-install-recommends build-essential` to this stage only.
# ---------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a source change does not
# re-download them. Only [project].dependencies: the [embedded] servers and the
# [dev] tools never enter the image.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/runtime-requirements.txt \
    && pip install --no-cache-dir -r /tmp/runtime-requirements.txt

COPY agents ./agents
COPY config ./config
COPY gateway ./gateway
COPY mercato ./mercato
COPY stores ./stores
COPY streams ./streams
# The project itself, non-editable, runtime dependencies only (no extras).
RUN pip install --no-cache-dir .

# ---------------------------------------------------------------------------
# runtime: the venv, a non-root user and the data dir; no build tools, no source.
# ---------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    MERCATO_ENV=prod \
    MERCATO_HTTP_HOST=0.0.0.0 \
    MERCATO_DATA_DIR=/var/lib/mercato

# Fixed numeric ids so orchestrators can verify runAsNonRoot and volumes can be
# chowned ahead of time.
RUN groupadd --system --gid 10001 mercato \
    && useradd --system --uid 10001 --gid mercato --home-dir /var/lib/mercato \
        --no-create-home --shell /usr/sbin/nologin mercato \
    && install -d -o mercato -g mercato -m 0750 /var/lib/mercato

COPY --from=build /opt/venv /opt/venv

# The worker's RocksDB table stores live here. They are local caches of the
# tables' changelog topics: losing them costs a replay at startup, not data.
# Ownership is set above, before VOLUME, so a fresh volume starts writable by mercato.
VOLUME ["/var/lib/mercato"]
WORKDIR /var/lib/mercato
USER 10001:10001

EXPOSE 8080

# Liveness of the gateway only; compose overrides or disables it per service
# (the worker and the one-shot commands serve no HTTP).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/live', timeout=4).close()"]

ENTRYPOINT ["mercato"]
CMD ["gateway"]
