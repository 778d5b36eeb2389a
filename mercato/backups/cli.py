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
from mercato.rebuild import rebuild_read_models, summary_lines


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


async def rebuild(settings: Settings, *, within: float) -> int:
    """Rebuild the read models; prints each collection's count, returns the exit code."""
    try:
        counts = await rebuild_read_models(settings, within=within)
    except BackupError as exc:
        sys.stderr.write(f"mercato: {exc}\n")
        return 1
    except (KafkaError, PyMongoError, OSError) as exc:
        sys.stderr.write(f"mercato: rebuild failed, the broker or MongoDB is away: {exc!r}\n")
        return 1
    sys.stdout.write("".join(f"{line}\n" for line in summary_lines(counts)))
    sys.stdout.write("read models rebuilt; start the workers again\n")
    return 0
