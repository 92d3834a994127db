"""``rag``: run the whole system, its infrastructure, or one component.

Service packages (gateway, ingest, query) are reached by import strings
only: ragstream must not depend on them statically.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ragstream.localstack import StackError
from ragstream.supervisor import CliError
from ragstream.up import StackOptions, UpOptions, migrate, run_services, run_up

Handler = Callable[[argparse.Namespace], int]


def _configure_logging(service: str) -> None:
    from pydantic import ValidationError

    from shared.config import Settings
    from shared.logging import configure_logging

    try:
        configure_logging(Settings(), service)
    except ValidationError as exc:
        raise CliError(f"invalid configuration: {exc.errors()[0]['msg']}") from exc


def _stack_options(args: argparse.Namespace) -> StackOptions:
    return StackOptions(
        data_dir=Path(args.data_dir).resolve(),
        broker=args.broker,
        kafka_port=int(args.kafka_port),
        postgres_port=int(args.postgres_port),
        redis_port=int(args.redis_port),
        chroma_port=int(args.chroma_port),
    )


def cmd_up(args: argparse.Namespace) -> int:
    _configure_logging("rag")
    options = UpOptions(
        stack=_stack_options(args),
        host=str(args.host),
        port=int(args.port),
        samples=bool(args.samples),
    )
    return run_up(options)


def cmd_services(args: argparse.Namespace) -> int:
    _configure_logging("rag")
    # stdout carries only the export lines, so it can be redirected to a file.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    return run_services(_stack_options(args))


def _share_metrics(workers: int) -> None:
    """With several gateway processes, each writes its metrics to a shared
    folder and any one of them serves the sum (prometheus-client's
    multiprocess mode). It must be set before any process imports the
    client, hence here, and emptied, so a previous run's numbers don't count."""
    if workers < 2:
        return
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        folder = tempfile.mkdtemp(prefix="rag-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def cmd_gateway(args: argparse.Namespace) -> int:
    import uvicorn

    _share_metrics(int(args.workers))
    uvicorn.run(
        "gateway.main:app",
        host=str(args.host),
        port=int(args.port),
        workers=int(args.workers),
        access_log=False,
        log_config=None,
        lifespan="on",
        # The gateway drains its streams before uvicorn starts shutting down
        # (gateway.drain); this only bounds what is left after that.
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"{args.kind}.__main__")
    module.main()
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from shared.config import Settings

    migrate(Settings().database_url)
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from shared.schemas import check_schemas, write_schemas

    directory = Path("schemas")
    if not args.check:
        written = write_schemas(directory)
        print(f"wrote {len(written)} files to {directory}/")
        return 0
    drifted = check_schemas(directory)
    for name in drifted:
        print(f"{directory}/{name} is out of date: run `rag schemas`")
    return 1 if drifted else 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from ragstream.api import ApiError
    from ragstream.evaluation.dataset import load_dataset, verify
    from ragstream.evaluation.runner import CONFIGS, EvalError, default_dataset_dir, run, table

    dataset = load_dataset(Path(args.dataset) if args.dataset else default_dataset_dir())
    problems = verify(dataset)
    if problems:
        raise CliError("the labelled set is inconsistent:\n  " + "\n  ".join(problems[:10]))
    if args.limit:
        dataset = dataset.head(args.limit)
    known = {c.name: c for c in CONFIGS}
    wanted = args.configs.split(",") if args.configs else list(known)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise CliError(f"unknown configuration {unknown[0]!r}; known: {', '.join(known)}")

    def say(text: str) -> None:
        print(text, end="", file=sys.stderr, flush=True)

    try:
        results = run(args.base_url, dataset, [known[n] for n in wanted], say=say)
    except (EvalError, ApiError) as exc:
        raise CliError(str(exc)) from exc
    print(f"{len(dataset.questions)} questions, {len(dataset.documents)} documents\n")
    print(table(results))
    if args.json:
        Path(args.json).write_text(
            json.dumps([{"config": r.config, "skipped": r.skipped, **r.summary} for r in results],
                       indent=2)
        )  # fmt: skip
    return 0


def _add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=".rag", help="state folder (default: .rag)")
    parser.add_argument(
        "--broker",
        choices=["kafka", "tansu"],
        default="kafka",
        help="kafka: Apache Kafka (Java); tansu: in-memory, no Java",
    )
    parser.add_argument("--kafka-port", type=int, default=9092, help="controller: port + 1")
    parser.add_argument("--postgres-port", type=int, default=5432)
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--chroma-port", type=int, default=8001)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag", description="ragstream: the whole system, its infrastructure, or one part."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="infrastructure, gateway and workers, in the foreground")
    _add_stack_arguments(up)
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--samples", action="store_true", help="load the sample documents")
    up.set_defaults(handler=cmd_up)

    services = commands.add_parser("services", help="only Kafka, PostgreSQL, Redis, Chroma")
    _add_stack_arguments(services)
    services.set_defaults(handler=cmd_services)

    gateway = commands.add_parser("gateway", help="the HTTP API")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int, default=8000)
    gateway.add_argument("--workers", type=int, default=1)
    gateway.set_defaults(handler=cmd_gateway)

    worker = commands.add_parser("worker", help="an ingest or query worker")
    worker.add_argument("kind", choices=["ingest", "query"])
    worker.set_defaults(handler=cmd_worker)

    commands.add_parser("migrate", help="upgrade the database schema").set_defaults(
        handler=cmd_migrate
    )
    evaluate = commands.add_parser(
        "eval", help="score retrieval configurations on a labelled set, through the HTTP API"
    )
    evaluate.add_argument("--base-url", default="http://127.0.0.1:8000", help="a running gateway")
    evaluate.add_argument("--dataset", help="labelled set folder (default: eval/pydocs)")
    evaluate.add_argument("--configs", help="comma-separated configuration names (default: all)")
    evaluate.add_argument("--limit", type=int, help="only the first N questions")
    evaluate.add_argument("--json", help="also write the figures to this file")
    evaluate.set_defaults(handler=cmd_eval)

    reconcile = commands.add_parser("reconcile", help="remove orphaned blobs and rows, once")
    reconcile.add_argument("--dry-run", action="store_true", help="only print what would go")
    reconcile.set_defaults(
        handler=lambda args: importlib.import_module("ingest.reconciler").command(args)
    )

    user = commands.add_parser("user", help="create users straight in the database")
    user_actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = user_actions.add_parser("create", help="a user of a tenant (created if new)")
    create.add_argument("--username", required=True)
    create.add_argument("--tenant", required=True, help="the tenant's name")
    create.add_argument("--admin", action="store_true", help="administers the tenant")
    create.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    create.set_defaults(
        handler=lambda args: importlib.import_module("gateway.user_admin").command(args)
    )

    from ragstream import dlq

    dlq.add_arguments(commands.add_parser("dlq", help="list or replay dead letters"))

    schemas = commands.add_parser("schemas", help="write (or --check) schemas/")
    schemas.add_argument("--check", action="store_true", help="exit 1 if schemas/ is stale")
    schemas.set_defaults(handler=cmd_schemas)

    config_doc = commands.add_parser("config-doc", help="write (or --check) the settings tables")
    config_doc.add_argument("--check", action="store_true", help="exit 1 if the doc is stale")
    config_doc.set_defaults(
        handler=lambda args: importlib.import_module("ragstream.config_doc").command(args)
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        code = handler(args)
    except (StackError, CliError) as exc:
        # Expected failures: the message says what to do, a traceback would not.
        print(f"rag: {exc}", file=sys.stderr)
        code = exc.exit_code if isinstance(exc, CliError) else 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
