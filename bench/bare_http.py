"""The bare aiohttp baseline: one JSON endpoint, served exactly like ``mercato gateway``.

    python -m bench.bare_http --port 8081
"""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import web

PROFILE = {"userId": "bench", "email": "bench@example.com", "name": "Bench", "roles": ["buyer"],
           "createdAt": "2026-11-22T00:00:00.000Z"}


async def me(request: web.Request) -> web.Response:
    """The same-sized answer as ``GET /v1/users/me``, with no work behind it."""
    return web.json_response(PROFILE)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM with gateway.main's server settings."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_http")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = web.Application()
    app.router.add_get("/v1/users/me", me)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None,
                shutdown_timeout=10, loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
