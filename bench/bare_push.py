"""The bare broadcast loop: aiohttp writing the gateway's push frames, nothing else.

    python -m bench.bare_push --port 8082

No Kafka, no auth, no replay: ``/v1/ws`` takes ``subscribe`` frames, ``/v1/events``
takes ``?channels=``, and ``POST /start?rate=R&channels=C`` starts generating R events a
second over channels ``product:bench-00000`` .. ``C-1``. Each event is encoded once, as
the gateway does, then written to every subscriber with aiohttp's own ``send_str`` /
``write``: the baseline ``bench.push_fanout`` compares the gateway against.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from typing import Any

import orjson
import uvloop
from aiohttp import WSMsgType, web

from bench.push_events import channel_name, sample_envelope

SUBS = web.AppKey("subs", dict)
TASKS = web.AppKey("tasks", list)
TICK = 0.005


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Subscribe frames in, events out; the same heartbeat as the gateway."""
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    subs: dict[str, set[Any]] = request.app[SUBS]
    mine: list[str] = []
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            frame = orjson.loads(msg.data)
            if frame.get("type") == "subscribe":
                channel = str(frame["channel"])
                subs.setdefault(channel, set()).add(ws)
                mine.append(channel)
                await ws.send_str(orjson.dumps({"type": "subscribed",
                                                "channel": channel}).decode())
    finally:
        for channel in mine:
            subs.get(channel, set()).discard(ws)
    return ws


async def events(request: web.Request) -> web.StreamResponse:
    """An SSE stream of ``?channels=``."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    subs: dict[str, set[Any]] = request.app[SUBS]
    channels = request.query.get("channels", "").split(",")
    for channel in channels:
        subs.setdefault(channel, set()).add(response)
    try:
        await response.write(b"event: ready\ndata: {}\n\n")
        while True:
            await asyncio.sleep(15)
            await response.write(b": keepalive\n\n")
    finally:
        for channel in channels:
            subs.get(channel, set()).discard(response)


async def start(request: web.Request) -> web.Response:
    """Begin generating events at ``rate`` a second over ``channels`` channels."""
    rate = float(request.query["rate"])
    count = int(request.query["channels"])
    request.app[TASKS].append(asyncio.create_task(_generate(request.app, rate, count)))
    return web.json_response({"started": True})


async def _generate(app: web.Application, rate: float, count: int) -> None:
    subs: dict[str, set[Any]] = app[SUBS]
    names = [channel_name(i) for i in range(count)]
    offsets = itertools.count()
    began, sent = time.perf_counter(), 0
    while True:
        due = int((time.perf_counter() - began) * rate) - sent
        for _ in range(due):
            offset = next(offsets)
            channel = names[offset % count]
            envelope = sample_envelope(channel, time.time_ns(), offset // count)
            frame = {"type": "event", "channel": channel, "id": f"0-{offset}", "event": envelope}
            text = orjson.dumps(frame).decode()
            chunk = (f"id: 0-{offset}\nevent: {envelope['type']}\n"
                     f"data: {orjson.dumps({'channel': channel, 'event': envelope}).decode()}"
                     "\n\n").encode()
            for sub in list(subs.get(channel, ())):
                try:
                    if isinstance(sub, web.WebSocketResponse):
                        await sub.send_str(text)
                    else:
                        await sub.write(chunk)
                except ConnectionError:
                    continue
        sent += due
        await asyncio.sleep(TICK)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_push")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = web.Application()
    app[SUBS] = {}
    app[TASKS] = []
    app.router.add_get("/v1/ws", websocket)
    app.router.add_get("/v1/events", events)
    app.router.add_post("/start", start)
    app.router.add_get("/v1/users/me", alive)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None,
                shutdown_timeout=2, loop=uvloop.new_event_loop())


async def alive(request: web.Request) -> web.Response:
    """The liveness probe the driver polls."""
    return web.json_response({})


if __name__ == "__main__":
    main()
