"""The ``mercato`` command line: dev stack, production processes, topics and schemas."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from config import ConfigError, Settings
from mercato.devstack import NoDevStack

TOPICS_TIMEOUT = 30.0
REBUILD_TIMEOUT = 3600.0


def _stack_settings(args: argparse.Namespace) -> Settings:
    """Settings of a command that talks to the stack: the environment, else ``mercato dev``."""
    from mercato.devstack import client_settings

    return client_settings(Path(args.data_dir) if args.data_dir else None)


def _dev(args: argparse.Namespace) -> int:
    from mercato.devserver import DevOptions, run

    return run(DevOptions(port=args.port, data_dir=Path(args.data_dir), broker=args.broker,
                          reset=args.reset, demo=args.demo))


def _worker(args: argparse.Namespace) -> int:
    from agents.worker import run

    run(Settings.from_env())
    return 0


def _gateway(args: argparse.Namespace) -> int:
    from gateway.main import run

    run(Settings.from_env())
    return 0


def _topics_create(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from streams.admin import TopicMismatch, ensure_topics

    settings = _stack_settings(args)
    try:
        result = asyncio.run(asyncio.wait_for(ensure_topics(settings), args.timeout))
    except TopicMismatch as exc:
        sys.stderr.write(f"mercato: {exc}\n")
        return 1
    except (TimeoutError, KafkaError, OSError) as exc:
        reason = f"no answer within {args.timeout:g}s" if isinstance(exc, TimeoutError) else exc
        sys.stderr.write(
            f"mercato: cannot create topics on {', '.join(settings.kafka_bootstrap)}: {reason}\n"
            "  is the broker running and MERCATO_KAFKA_URL right?\n"
        )
        return 1
    width = max(len(name) for name in result)
    for name, state in sorted(result.items()):
        sys.stdout.write(f"{name:<{width}}  {state}\n")
    return 0


def _dump(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(directory: Path) -> list[Path]:
    """Write every event's JSON Schema and the AsyncAPI document; return the paths written."""
    from streams.registry import all_specs
    from streams.schema import asyncapi_document, event_schema

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in all_specs():
        path = directory / f"{spec.type}.v{spec.version}.json"
        path.write_text(_dump(event_schema(spec)), encoding="utf-8")
        written.append(path)
    path = directory / "asyncapi.json"
    path.write_text(_dump(asyncapi_document()), encoding="utf-8")
    written.append(path)
    return written


def _admin_create(args: argparse.Namespace) -> int:
    from mercato.admin import create_admin

    settings = _stack_settings(args)
    return asyncio.run(
        create_admin(settings, email=args.email, password=args.password, name=args.name)
    )


def _page_size(raw: str) -> int:
    size = int(raw) if raw.isdigit() else 0
    if not 1 <= size <= 1000:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 1000")
    return size


def _dlq_list(args: argparse.Namespace) -> int:
    from mercato.deadletters import list_letters

    return asyncio.run(list_letters(_stack_settings(args), topic=args.topic, agent=args.agent,
                                    limit=args.limit))


def _dlq_redrive(args: argparse.Namespace) -> int:
    from mercato.deadletters import redrive_letter

    return asyncio.run(redrive_letter(_stack_settings(args), args.id))


def _backup_create(args: argparse.Namespace) -> int:
    from mercato.backups.cli import create

    return asyncio.run(create(_stack_settings(args), Path(args.directory)))


def _backup_restore(args: argparse.Namespace) -> int:
    from mercato.backups.cli import restore

    return asyncio.run(restore(_stack_settings(args), Path(args.directory)))


def _rebuild_read_models(args: argparse.Namespace) -> int:
    from mercato.backups.cli import rebuild

    return asyncio.run(rebuild(_stack_settings(args), within=args.timeout))


def _schemas_export(args: argparse.Namespace) -> int:
    for path in export_schemas(Path(args.directory)):
        sys.stdout.write(f"{path}\n")
    return 0


def _stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", default=None,
        help="data dir of the `mercato dev` to talk to when no MERCATO_*_URL is set "
             "(default: $MERCATO_DATA_DIR, else .mercato)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="mercato", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run the whole stack locally with embedded services")
    dev.add_argument("--port", type=int, default=8080, help="HTTP port of the gateway")
    dev.add_argument("--data-dir", default=".mercato", help="where data and logs live")
    dev.add_argument("--broker", choices=("noida", "tansu"), default="noida",
                     help="embedded Kafka broker (tansu keeps everything in memory)")
    dev.add_argument("--reset", action="store_true", help="delete the data dir first")
    dev.add_argument("--demo", action="store_true", help="register a demo seller and buyer")
    dev.set_defaults(handler=_dev)

    commands.add_parser("worker", help="run the Faust agents").set_defaults(handler=_worker)
    commands.add_parser("gateway", help="run the HTTP gateway").set_defaults(handler=_gateway)

    topics = commands.add_parser("topics", help="manage Kafka topics")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True, metavar="COMMAND")
    create = topic_commands.add_parser("create", help="create every catalogue topic (idempotent)")
    create.add_argument("--timeout", type=float, default=TOPICS_TIMEOUT,
                        help="seconds to wait for the broker")
    _stack_options(create)
    create.set_defaults(handler=_topics_create)

    schemas = commands.add_parser("schemas", help="event schemas")
    schema_commands = schemas.add_subparsers(dest="schemas_command", required=True,
                                             metavar="COMMAND")
    export = schema_commands.add_parser("export", help="write JSON Schemas and AsyncAPI to DIR")
    export.add_argument("directory", metavar="DIR")
    export.set_defaults(handler=_schemas_export)

    admin = commands.add_parser("admin", help="administer accounts")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    admin_create = admin_commands.add_parser(
        "create", help="bootstrap an admin account (needs a running worker)"
    )
    admin_create.add_argument("--email", required=True)
    admin_create.add_argument("--password", required=True)
    admin_create.add_argument("--name", default="Administrator")
    _stack_options(admin_create)
    admin_create.set_defaults(handler=_admin_create)

    dlq = commands.add_parser("dlq", help="dead letters: records agents could not process")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    dlq_list = dlq_commands.add_parser("list", help="the newest dead letters, newest first")
    dlq_list.add_argument("--topic", default=None, help="only this topic (its full name)")
    dlq_list.add_argument("--agent", default=None, help="only this agent's")
    dlq_list.add_argument("--limit", type=_page_size, default=20, help="how many (default 20)")
    _stack_options(dlq_list)
    dlq_list.set_defaults(handler=_dlq_list)
    dlq_redrive = dlq_commands.add_parser(
        "redrive", help="produce a dead letter's record again to its topic, once")
    dlq_redrive.add_argument("id", metavar="ID")
    _stack_options(dlq_redrive)
    dlq_redrive.set_defaults(handler=_dlq_redrive)

    backup = commands.add_parser("backup", help="back up and restore a stack's topics and files")
    backup_commands = backup.add_subparsers(dest="backup_command", required=True,
                                            metavar="COMMAND")
    backup_create = backup_commands.add_parser(
        "create", help="write every topic's records, the file content and a manifest to DIR")
    backup_create.add_argument("directory", metavar="DIR", help="a new or empty directory")
    _stack_options(backup_create)
    backup_create.set_defaults(handler=_backup_create)
    backup_restore = backup_commands.add_parser(
        "restore", help="restore the backup in DIR into an empty stack")
    backup_restore.add_argument("directory", metavar="DIR")
    _stack_options(backup_restore)
    backup_restore.set_defaults(handler=_backup_restore)

    rebuild = commands.add_parser("rebuild", help="rebuild derived state from the topics")
    rebuild_commands = rebuild.add_subparsers(dest="rebuild_command", required=True,
                                              metavar="COMMAND")
    read_models = rebuild_commands.add_parser(
        "read-models", help="drop the MongoDB projections and replay the topics into them "
                            "(stop the workers first: this runs its own)")
    read_models.add_argument("--timeout", type=float, default=REBUILD_TIMEOUT,
                             help="seconds the replay may take")
    _stack_options(read_models)
    read_models.set_defaults(handler=_rebuild_read_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mercato`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        sys.stderr.write(f"mercato: configuration error: {exc}\n")
        return 2
    except NoDevStack as exc:
        sys.stderr.write(f"mercato: {exc}\n")
        return 1
    return code
