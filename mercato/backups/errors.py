"""Why a backup or a restore was refused; the message says what to do."""

from __future__ import annotations


class BackupError(RuntimeError):
    """A backup or restore that cannot go ahead; its text is meant for the operator."""
