"""The manifest of a backup: what it holds, where it came from, and every file's sha256."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson

from mercato.backups.errors import BackupError

FORMAT = 1
NAME = "manifest.json"
HASH_BLOCK = 1024 * 1024
# The mode of a backup's directories: they hold password hashes and webhook secrets.
PRIVATE = 0o700


def sha256_of(path: Path) -> str:
    """The hex sha256 of the file at ``path``, read a block at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def write(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` into ``directory``; written last, so a backup without one is partial."""
    path = directory / NAME
    path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


def read(directory: Path) -> dict[str, Any]:
    """The manifest of the backup in ``directory``; BackupError if missing or of another format."""
    path = directory / NAME
    try:
        manifest: dict[str, Any] = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{path} is missing: {directory} is no backup, or an unfinished "
                          "one (the manifest is written last)") from None
    except orjson.JSONDecodeError as exc:
        raise BackupError(f"{path} is not JSON ({exc}): the backup is damaged") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} has format {manifest.get('format')!r}; this mercato reads "
                          f"format {FORMAT}")
    return manifest


def verify(directory: Path, manifest: dict[str, Any]) -> None:
    """Refuse (BackupError) unless every file the manifest lists has its recorded sha256."""
    bad = []
    for name, expected in sorted(manifest["sha256"].items()):
        path = directory / name
        if not path.is_file():
            bad.append(f"{name} is missing")
        elif sha256_of(path) != expected:
            bad.append(f"{name} does not match its sha256")
    if bad:
        raise BackupError("the backup is damaged, nothing was restored: " + "; ".join(bad))


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a listing shows of a manifest: counts, not every partition."""
    topics = manifest["topics"]
    return {
        "format": manifest["format"],
        "createdAt": manifest["createdAt"],
        "topics": len(topics),
        "records": sum(p["records"] for t in topics.values() for p in t["partitions"].values()),
        "files": manifest["content"]["files"],
        "contentBytes": manifest["content"]["bytes"],
    }
