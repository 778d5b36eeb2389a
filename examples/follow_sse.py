"""Follow push channels as Server-Sent Events (``/v1/events``), as a browser's EventSource.

Start the stack (``make run ARGS=--demo`` creates the demo buyer this signs in as by
default), then, from the clone::

    .venv/bin/python examples/follow_sse.py --max-events 5
    .venv/bin/python examples/follow_sse.py --channel product:PRODUCT_ID --live --timeout 60

EventSource cannot send an ``Authorization`` header, so this does what a web page does:
it takes a 60-second stream ticket (``POST /v1/stream-tickets``) and opens
``/v1/events?channels=…&token=TICKET`` with ``Last-Event-ID`` (``0``: from the start of
each channel; ``--live``: new events only). Every frame is printed as one JSON line
``{"event", "id", "data"}``. An ``event: close`` with code ``4401`` (token expired or
revoked) or a stream that simply ends makes it sign in again and reconnect with the
last ``id:`` it saw, so nothing is lost.

The gateway comes from ``--url``, else ``MERCATO_URL``, else ``http://127.0.0.1:8080``;
the account from ``--email``/``--password``, else ``MERCATO_EMAIL``/``MERCATO_PASSWORD``.
It stops after ``--max-events`` events or ``--timeout`` seconds. Exit status: 0 when it
saw the events it was asked for (or ran out its time without a ``--max-events``), 1 on a
refusal or too few events, 2 when no gateway answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aiohttp

DEFAULT_URL = "http://127.0.0.1:8080"
DEMO_EMAIL = "buyer@example.com"
DEMO_PASSWORD = "mercato-demo-123"  # noqa: S105 - the published `--demo` account
SIGN_IN_HINT = ("Pass --email/--password of an account, or start the stack with "
                "`make run ARGS=--demo`, which creates " + DEMO_EMAIL + ".")
RECONNECT = {4401: "the session ended", 1001: "the gateway went away", 1013: "too slow",
             1006: "the connection dropped"}


class Refused(Exception):
    """The gateway answered, but not with what following needs."""


class NoGateway(Exception):
    """Nothing answers at the gateway URL."""


async def _json(
    response: aiohttp.ClientResponse, what: str, expect: int, hint: str = ""
) -> Any:
    body = await response.json(content_type=None)
    if response.status != expect:
        raise Refused(f"{what} answered {response.status}: {body}" + (hint and f"\n{hint}"))
    return body


class Follower:
    """One subscriber: its channels, the last event id, and how many events it has seen."""

    def __init__(self, http: aiohttp.ClientSession, args: argparse.Namespace) -> None:
        self.http = http
        self.args = args
        self.base: str = args.url.rstrip("/")
        self.channels: list[str] = args.channel or []
        self.last: str | None = None if args.live else args.after
        self.seen = 0

    def done(self) -> bool:
        """Whether ``--max-events`` events have been printed."""
        return self.args.max_events is not None and self.seen >= self.args.max_events

    async def ticket(self) -> str:
        """Sign in and trade the access token for a stream ticket."""
        credentials = {"email": self.args.email, "password": self.args.password}
        async with self.http.post(f"{self.base}/v1/auth/login", json=credentials) as response:
            if response.status != 200:
                await _json(response, f"sign-in as {self.args.email}", 200, hint=SIGN_IN_HINT)
            token = (await response.json())["accessToken"]
        bearer = {"Authorization": f"Bearer {token}"}
        if not self.channels:
            async with self.http.get(f"{self.base}/v1/users/me", headers=bearer) as response:
                self.channels = [f"user:{(await _json(response, 'users/me', 200))['userId']}"]
        async with self.http.post(f"{self.base}/v1/stream-tickets", headers=bearer) as response:
            ticket: str = (await _json(response, "stream-tickets", 201))["ticket"]
        return ticket

    async def run(self) -> None:
        """Open the stream, follow it, and reconnect after a close that says to, until done."""
        while True:
            try:
                code = await self.stream(await self.ticket())
            except aiohttp.ClientConnectionError as exc:
                raise NoGateway(str(exc)) from exc
            if self.done():
                return
            if code not in RECONNECT:
                raise Refused(f"the stream closed with code {code}")
            print(f"closed with {code} ({RECONNECT[code]}): resuming", file=sys.stderr)
            await asyncio.sleep(1)

    async def stream(self, ticket: str) -> int | None:
        """Follow one stream; the close code (1001 when it just ended), None once done."""
        params = {"channels": ",".join(self.channels), "token": ticket}
        headers = {} if self.last is None else {"Last-Event-ID": self.last}
        async with self.http.get(
            f"{self.base}/v1/events", params=params, headers=headers
        ) as response:
            if response.status != 200:
                await _json(response, "GET /v1/events", 200)
            try:
                return await self.frames(response)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError):
                return 1006

    async def frames(self, response: aiohttp.ClientResponse) -> int | None:
        """Read ``event:``/``id:``/``data:`` frames until a close, the end, or done."""
        fields: dict[str, str] = {}
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                continue  # a keepalive comment
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if not fields:
                continue
            code = self.handle(fields)
            fields = {}
            if code is not None or self.done():
                return code
        return 1001  # the stream ended without a close frame: the gateway went away

    def handle(self, fields: dict[str, str]) -> int | None:
        """Print a frame, remember its id; the close code if it is ``event: close``."""
        kind = fields.get("event", "message")
        data: Any = json.loads(fields["data"]) if "data" in fields else None
        print(json.dumps({"event": kind, "id": fields.get("id"), "data": data}), flush=True)
        if "id" in fields:
            self.last = fields["id"]  # the ready frame's id too: a resume then has no gap
        if kind == "close":
            return int(data["code"]) if data and data.get("code") else 1000
        if isinstance(data, dict) and "event" in data:
            self.seen += 1
        return None


def arguments() -> argparse.Namespace:
    """The command line, with the environment's defaults."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    env = os.environ.get
    parser.add_argument("--url", default=env("MERCATO_URL", DEFAULT_URL),
                        help="the gateway (default: $MERCATO_URL or %(default)s)")
    parser.add_argument("--email", default=env("MERCATO_EMAIL", DEMO_EMAIL))
    parser.add_argument("--password", default=env("MERCATO_PASSWORD", DEMO_PASSWORD))
    parser.add_argument("--channel", action="append",
                        help="user:ID, order:ID, product:ID or dashboard (repeatable; "
                        "default: your own user channel)")
    parser.add_argument("--after", default="0", help="resume after this event id (default: 0)")
    parser.add_argument("--live", action="store_true", help="only events from now on")
    parser.add_argument("--max-events", type=int, help="stop after this many events")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="stop after this many seconds (default: %(default)s)")
    return parser.parse_args()


def main() -> int:
    """Follow until done or out of time; map the outcome to the exit status."""
    args = arguments()
    seen = 0

    async def bounded() -> None:
        nonlocal seen
        # No total timeout on the session: a stream is meant to stay open.
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            follower = Follower(http, args)
            try:
                async with asyncio.timeout(args.timeout):
                    await follower.run()
            finally:
                seen = follower.seen

    try:
        asyncio.run(bounded())
    except TimeoutError:
        if args.max_events is not None:
            print(f"saw {seen} of {args.max_events} events in {args.timeout:g}s", file=sys.stderr)
            return 1
    except NoGateway as exc:
        print(f"no Mercato gateway answers at {args.url} ({exc}).\n"
              "Start the stack with `make run`, or pass --url / set MERCATO_URL.",
              file=sys.stderr)
        return 2
    except Refused as exc:
        print(f"follow_sse: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
