"""Follow push channels over the WebSocket ``/v1/ws``, resuming across reconnects.

Start the stack (``make run ARGS=--demo`` creates the demo buyer this signs in as by
default), then, from the clone::

    .venv/bin/python examples/follow_ws.py --max-events 5
    .venv/bin/python examples/follow_ws.py --email ada@example.com --password '…' \\
        --channel product:PRODUCT_ID --live --timeout 60

It signs in, subscribes to ``user:{your id}`` (or each ``--channel``) from the start of
the channel (``--after 0``; ``--live`` for new events only) and prints every frame as one
JSON line. When the stream ends with ``4401`` (the token expired or was revoked) it
signs in again and resumes after the last event id it printed, so nothing is lost; after
``1001`` (gateway going away) or ``1013`` (too slow) it reconnects the same way.

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
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

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


async def sign_in(base: str, email: str, password: str) -> tuple[str, str]:
    """(access token, user id) for the account."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            async with http.post(f"{base}/v1/auth/login",
                                 json={"email": email, "password": password}) as response:
                body: Any = await response.json(content_type=None)
                if response.status != 200:
                    raise Refused(f"sign-in as {email} answered {response.status}: {body}\n"
                                  f"{SIGN_IN_HINT}")
            token: str = body["accessToken"]
            async with http.get(f"{base}/v1/users/me",
                                headers={"Authorization": f"Bearer {token}"}) as response:
                me: Any = await response.json(content_type=None)
        return token, str(me["userId"])
    except aiohttp.ClientConnectionError as exc:
        raise NoGateway(str(exc)) from exc


class Follower:
    """One subscriber: its channels, the last event id of each, and how many it has seen."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base: str = args.url.rstrip("/")
        self.last: dict[str, str | None] = {}
        self.seen = 0

    def done(self) -> bool:
        """Whether ``--max-events`` events have been printed."""
        return self.args.max_events is not None and self.seen >= self.args.max_events

    async def run(self) -> None:
        """Connect, follow, and reconnect after a close that says to, until done."""
        while True:
            token, user_id = await sign_in(self.base, self.args.email, self.args.password)
            if not self.last:
                start = None if self.args.live else self.args.after
                self.last = {c: start for c in self.args.channel or [f"user:{user_id}"]}
            code = await self.connection(token)
            if self.done():
                return
            if code not in RECONNECT:
                raise Refused(f"the stream closed with code {code}")
            print(f"closed with {code} ({RECONNECT[code]}): resuming", file=sys.stderr)
            await asyncio.sleep(1)

    async def connection(self, token: str) -> int | None:
        """Follow on one connection; the close code, or None once done."""
        url = self.base.replace("http", "ws", 1) + "/v1/ws"
        try:
            async with websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10
            ) as ws:
                for channel, after in self.last.items():
                    # "resume" replays what came after the id ("0": the whole channel),
                    # then stays live; "subscribe" is live only.
                    frame = ({"type": "subscribe", "channel": channel} if after is None
                             else {"type": "resume", "channel": channel, "after": after})
                    await ws.send(json.dumps(frame))
                while not self.done():
                    self.handle(json.loads(await ws.recv()))
                return None
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else 1006
        except InvalidStatus as exc:
            raise Refused(f"the WebSocket upgrade answered {exc.response.status_code}") from exc
        except OSError as exc:
            raise NoGateway(str(exc)) from exc

    def handle(self, frame: dict[str, Any]) -> None:
        """Print a frame; remember an event's id so a reconnect resumes after it."""
        print(json.dumps(frame), flush=True)
        if frame["type"] == "event":
            self.last[frame["channel"]] = frame["id"]
            self.seen += 1
        elif frame["type"] == "error" and str(frame.get("code")).startswith("REPLAY_"):
            # The stream goes on, live; what was missed must be read from the REST API.
            print(f"{frame['code']}: {frame.get('message', '')}", file=sys.stderr)
        elif frame["type"] == "error":
            raise Refused(f"the gateway refused: {frame.get('code')} {frame.get('message', '')}")


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
    follower = Follower(args)

    async def bounded() -> None:
        async with asyncio.timeout(args.timeout):
            await follower.run()

    try:
        asyncio.run(bounded())
    except TimeoutError:
        if args.max_events is not None:
            print(f"saw {follower.seen} of {args.max_events} events in {args.timeout:g}s",
                  file=sys.stderr)
            return 1
    except NoGateway as exc:
        print(f"no Mercato gateway answers at {args.url} ({exc}).\n"
              "Start the stack with `make run`, or pass --url / set MERCATO_URL.",
              file=sys.stderr)
        return 2
    except Refused as exc:
        print(f"follow_ws: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
