"""Files: upload/download MB/s through the gateway vs straight through AsyncGridFSBucket.

    python -m bench.files [--files 4] [--mb 16] [--timeout 180]

Starts an embedded stack (noida broker, secantusdb, Redis) on a temp dir, one
``mercato worker`` and one ``mercato gateway`` process, then, in one run and
against the same MongoDB: uploads ``--files`` files of ``--mb`` MB through the
gateway (real socket, multipart, GridFS, Kafka round trip to the files agent)
and downloads them; then writes and reads the same bytes with pymongo's
``AsyncGridFSBucket`` directly. Prints MB/s of each and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from gridfs import AsyncGridFSBucket
from pymongo import AsyncMongoClient

from bench.common import (
    BenchError,
    BenchResult,
    machine_note,
    pid_peak_rss_mb,
    ratio_line,
    write_json,
)
from config import Settings
from gateway.identity.auth import TokenService
from mercato.embedded import EmbeddedStack, Endpoints
from streams.admin import ensure_topics

MB = 1024 * 1024


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.files", description=__doc__)
    parser.add_argument("--files", type=int, default=4, help="files per direction")
    parser.add_argument("--mb", type=int, default=16, help="size of each file in MB")
    parser.add_argument("--timeout", type=float, default=180.0, help="hard limit in seconds")
    return parser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def _process(kind: str, settings: Settings, log: Path) -> AsyncIterator[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    env.update(settings.to_env())
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mercato", kind, env=env, stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        yield proc.pid
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def gateway_ready(session: aiohttp.ClientSession, base: str, limit: float) -> None:
    """Wait until the gateway at ``base`` answers ``/health/ready`` with 200."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/health/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.5)
    raise BenchError(f"the gateway at {base} was not ready within {limit:.0f}s")


async def uploads_warm_up(
    session: aiohttp.ClientSession, base: str, token: str, limit: float
) -> None:
    """Upload until the files agent confirms one: the soak and this bench start measuring then."""
    # Ready means the worker's group is Stable; the files agent may still be assigning.
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        form = aiohttp.FormData()
        form.add_field("file", b"warm-up", filename="warm.txt")
        async with session.post(f"{base}/v1/files", data=form,
                                headers={"Authorization": f"Bearer {token}"}) as response:
            if response.status == 201:
                return
        await asyncio.sleep(0.5)
    raise BenchError(f"no upload was confirmed by the files agent within {limit:.0f}s")


async def _through_gateway(
    session: aiohttp.ClientSession, base: str, token: str, blobs: list[bytes]
) -> tuple[BenchResult, BenchResult]:
    headers = {"Authorization": f"Bearer {token}"}
    ids = []
    started = time.perf_counter()
    for blob in blobs:
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(blob), filename="bench.bin")
        async with session.post(f"{base}/v1/files", data=form, headers=headers) as response:
            if response.status != 201:
                raise BenchError(f"upload answered {response.status}: {await response.text()}")
            ids.append((await response.json())["fileId"])
    up = time.perf_counter() - started
    total = sum(len(b) for b in blobs)
    started = time.perf_counter()
    got = 0
    for file_id in ids:
        async with session.get(f"{base}/v1/files/{file_id}/content", headers=headers) as resp:
            async for piece in resp.content.iter_chunked(256 * 1024):
                got += len(piece)
    down = time.perf_counter() - started
    if got != total:
        raise BenchError(f"downloaded {got} bytes, uploaded {total}")
    return (BenchResult(name="gateway-up", events=total, seconds=up),
            BenchResult(name="gateway-down", events=total, seconds=down))


async def _direct(mongo_url: str, database: str, blobs: list[bytes]) -> tuple[BenchResult, ...]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        bucket = AsyncGridFSBucket(client[database], bucket_name="direct")
        ids = [uuid.uuid4().hex for _ in blobs]
        started = time.perf_counter()
        for file_id, blob in zip(ids, blobs, strict=True):
            await bucket.upload_from_stream_with_id(file_id, "bench.bin", blob)
        up = time.perf_counter() - started
        started = time.perf_counter()
        got = 0
        for file_id in ids:
            stream = await bucket.open_download_stream(file_id)
            while chunk := await stream.readchunk():
                got += len(chunk)
        down = time.perf_counter() - started
    finally:
        await client.close()
    total = sum(len(b) for b in blobs)
    return (BenchResult(name="gridfs-up", events=total, seconds=up),
            BenchResult(name="gridfs-down", events=total, seconds=down))


async def _run(endpoints: Endpoints, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_url=endpoints.kafka_url,
        mongo_url=urlsplit(endpoints.mongo_url)._replace(path=f"/bench_{run}").geturl(),
        redis_url=endpoints.redis_url, data_dir=scratch, jwt_secret="b" * 48,
        topic_prefix=f"bench{run}.", app_id=f"mercato-bench-{run}", http_port=_free_port(),
        kafka_idempotent=endpoints.broker != "tansu", max_upload_bytes=(args.mb + 1) * MB,
        file_quota_bytes=1024 * 1024 * MB, rate_limit_enabled=False, log_json=False,
        log_level="WARNING",
    )
    await ensure_topics(settings)
    blobs = [os.urandom(args.mb * MB) for _ in range(args.files)]
    load = os.getloadavg()[0]
    base = f"http://127.0.0.1:{settings.http_port}"
    token = TokenService(settings).issue_access("u-bench", ["seller"])
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with (
        _process("worker", settings, scratch / "worker.log"),
        _process("gateway", settings, scratch / "gateway.log") as gateway_pid,
        aiohttp.ClientSession(timeout=timeout) as session,
    ):
        await gateway_ready(session, base, 60)
        await uploads_warm_up(session, base, token, 60)
        up, down = await _through_gateway(session, base, token, blobs)
        rss = pid_peak_rss_mb(gateway_pid)
    direct_up, direct_down = await _direct(settings.mongo_url, settings.mongo_database, blobs)
    results = [up, direct_up, down, direct_down]
    print(f"{'benchmark':<14}{'MB':>8}{'seconds':>9}{'MB/s':>9}")
    for r in results:
        print(f"{r.name:<14}{r.events / MB:>8.0f}{r.seconds:>9.2f}{r.rate / MB:>9.1f}")
    lines = [ratio_line(up, direct_up), ratio_line(down, direct_down)]
    print("\n".join(lines))
    print(f"gateway peak RSS {rss:.0f} MB" if rss is not None else "gateway peak RSS unknown")
    return {
        "date": datetime.date.today().isoformat(),
        "machine": machine_note(),
        "load_average_1m_at_start": load,
        "command": " ".join(["python -m bench.files", *sys.argv[1:]]),
        "params": {"files": args.files, "mb": args.mb},
        "results": [r.as_dict() for r in results],
        "ratios": lines,
        "gateway_peak_rss_mb": rss,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the files benchmark; exit 1 with the reason when it cannot produce figures."""
    args = _parser().parse_args(argv)
    if args.files < 1 or args.mb < 1:
        _parser().error("--files and --mb must be positive")
    with tempfile.TemporaryDirectory(prefix="mercato-bench-files-") as scratch:
        try:
            with EmbeddedStack(Path(scratch) / "stack") as endpoints:
                payload = asyncio.run(asyncio.wait_for(
                    _run(endpoints, args, Path(scratch)), args.timeout))
        except (BenchError, TimeoutError) as exc:
            print(f"bench.files failed: {exc or 'timed out'}", file=sys.stderr)
            return 1
    print(f"results: {write_json('files', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
