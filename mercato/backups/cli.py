"""The ``mercato backup`` commands: outcomes and refusals as an operator reads them."""

from __future__ import annotations

import sys
from pathlib import Path

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from config import Settings
from mercato.backups.create import create_backup
from mercato.backups.errors import BackupError
from mercato.backups.manifest import summary
from mercato.backups.restore import restore_backup


async def create(settings: Settings, directory: Path) -> int:
    """Back the stack up into ``directory``; prints the summary, returns the exit code."""
    try:
        done = summary(await create_backup(settings, directory))
    except BackupError as exc:
        sys.stderr.write(f"mercato: {exc}\n")
        return 1
    except (KafkaError, PyMongoError, OSError) as exc:
        sys.stderr.write(f"mercato: backup failed, the broker or MongoDB is away: {exc!r}\n")
        return 1
    sys.stdout.write(f"backed up {done['records']} records of {done['topics']} topics and "
                     f"{done['files']} files ({done['contentBytes']} bytes) to {directory}\n")
    return 0


async def restore(settings: Settings, directory: Path) -> int:
    """Restore the backup in ``directory``; prints the summary, returns the exit code."""
    try:
        done = summary(await restore_backup(settings, directory))
    except BackupError as exc:
        sys.stderr.write(f"mercato: {exc}\n")
        return 1
    except (KafkaError, PyMongoError, OSError) as exc:
        sys.stderr.write(f"mercato: restore failed, the broker or MongoDB is away: {exc!r}\n")
        return 1
    sys.stdout.write(f"restored {done['records']} records of {done['topics']} topics and "
                     f"{done['files']} files from {directory}; start the workers to recover "
                     "their tables and rebuild the read models\n")
    return 0
