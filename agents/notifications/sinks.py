"""Where the notifications agent delivers messages: a file in dev and tests, logs in prod.

SMTP (or a provider's API) is a later adapter behind the same ``Sink`` contract.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import orjson

from config import Settings

log = logging.getLogger(__name__)
# Template parameters that must never reach a log line.
SECRET_PARAMS = frozenset({"token", "link"})


class Sink(Protocol):
    """Delivers one rendered message; must be safe to call again for the same message id."""

    async def deliver(self, message: dict[str, Any]) -> None:
        """Hand ``message`` to the channel."""


class FileSink:
    """Appends each message as a JSON line to ``{data_dir}/outbox/messages.jsonl`` (dev/test)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def deliver(self, message: dict[str, Any]) -> None:
        """Append the message, secrets included: this file stands in for the user's inbox."""
        # Written in the loop, not through a thread: appending a line to a local file takes
        # microseconds, and the thread hand-off cost a tenth of the worker's CPU under load.
        # Opened per line, so a test or developer may truncate or remove the file at any time.
        line = orjson.dumps(message) + b"\n"
        try:
            handle = self.path.open("ab")
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("ab")
        with handle:
            handle.write(line)


class LogSink:
    """Logs that a message would be sent, without its secret parameters (prod placeholder)."""

    async def deliver(self, message: dict[str, Any]) -> None:
        """Log the message with secret parameters redacted."""
        params = {
            k: ("***" if k in SECRET_PARAMS else v) for k, v in message.get("params", {}).items()
        }
        log.info(
            "message %s to user %s via %s (%s)",
            message.get("messageId"),
            message.get("userId"),
            message.get("channel"),
            message.get("template"),
            extra={"params": params},
        )


def sink_for(settings: Settings) -> Sink:
    """The file sink in dev (tests read it), the log sink in prod."""
    if settings.env == "dev":
        return FileSink(settings.data_dir / "outbox" / "messages.jsonl")
    return LogSink()
