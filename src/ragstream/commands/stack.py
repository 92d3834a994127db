"""Running the system: up, services, gateway, worker, migrate.

Service packages are imported inside the command that runs them, so the
rest of ``rag`` loads none of them."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ragstream.commands.maintenance import StackDir
from ragstream.dependencies import CHROMA, POSTGRES, connect
from ragstream.settings import load_settings
from ragstream.stack_env import DEFAULT_DATA_DIR
from ragstream.up import StackOptions, UpOptions, migrate, run_services, run_up


class Broker(StrEnum):
    kafka = "kafka"
    tansu = "tansu"


class BlobStore(StrEnum):
    local = "local"
    s3 = "s3"


class WorkerKind(StrEnum):
    ingest = "ingest"
    query = "query"
    sync = "sync"


DataDir = Annotated[Path, typer.Option("--data-dir", help="state folder")]
BrokerOption = Annotated[
    Broker, typer.Option("--broker", help="kafka: Apache Kafka (Java); tansu: in-memory, no Java")
]
KafkaPort = Annotated[int, typer.Option("--kafka-port", help="controller: port + 1")]
KafkaBrokers = Annotated[
    int,
    typer.Option(
        "--kafka-brokers",
        help="1, or 3: a KRaft cluster with replication 3 and min.insync.replicas 2"
        " (node n on --kafka-port + 2(n - 1), its controller on the next)",
    ),
]
BlobStoreOption = Annotated[
    BlobStore,
    typer.Option(
        "--blob-store",
        help="local: uploads in <data dir>/blobs; s3: in a local S3 server (s3s-fs, built"
        " with cargo on first use), as BLOB_STORE=s3 keeps them in a bucket",
    ),
]
S3Port = Annotated[int, typer.Option("--s3-port")]
PostgresPort = Annotated[int, typer.Option("--postgres-port")]
RedisPort = Annotated[int, typer.Option("--redis-port")]
ChromaPort = Annotated[int, typer.Option("--chroma-port")]
Host = Annotated[str, typer.Option("--host")]
Port = Annotated[int, typer.Option("--port")]


def _configure_logging(service: str, log_dir: Path | None = None) -> None:
    from shared.runtime.logging import configure_logging

    configure_logging(load_settings(), service, log_dir=log_dir)


def up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    broker: BrokerOption = Broker.kafka,
    kafka_port: KafkaPort = 9092,
    postgres_port: PostgresPort = 5432,
    redis_port: RedisPort = 6379,
    chroma_port: ChromaPort = 8001,
    kafka_brokers: KafkaBrokers = 1,
    blob_store: BlobStoreOption = BlobStore.local,
    s3_port: S3Port = 8014,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    samples: Annotated[bool, typer.Option("--samples", help="load the sample documents")] = False,
    local_llm: Annotated[
        bool,
        typer.Option(
            "--local-llm", help="generate answers with the bundled offline model (rag llm-server)"
        ),
    ] = False,
    llm_port: Annotated[int, typer.Option("--llm-port")] = 8081,
) -> int:
    """Infrastructure, gateway and workers, in the foreground."""
    stack = StackOptions(
        data_dir.resolve(),
        broker.value,
        kafka_port,
        postgres_port,
        redis_port,
        chroma_port,
        kafka_brokers,
        blob_store.value,
        s3_port,
    )
    _configure_logging("rag", log_dir=stack.data_dir / "logs")
    options = UpOptions(
        stack=stack,
        host=host,
        port=port,
        samples=samples,
        llm_port=llm_port if local_llm else None,
    )
    return run_up(options)


def services(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    broker: BrokerOption = Broker.kafka,
    kafka_port: KafkaPort = 9092,
    postgres_port: PostgresPort = 5432,
    redis_port: RedisPort = 6379,
    chroma_port: ChromaPort = 8001,
    kafka_brokers: KafkaBrokers = 1,
    blob_store: BlobStoreOption = BlobStore.local,
    s3_port: S3Port = 8014,
) -> int:
    """Only Kafka, PostgreSQL, Redis, Chroma (and an S3 server with --blob-store s3)."""
    stack = StackOptions(
        data_dir.resolve(),
        broker.value,
        kafka_port,
        postgres_port,
        redis_port,
        chroma_port,
        kafka_brokers,
        blob_store.value,
        s3_port,
    )
    _configure_logging("rag", log_dir=stack.data_dir / "logs")
    # stdout carries only the export lines, so it can be redirected to a file.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    return run_services(stack)


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


def gateway(host: Host = "127.0.0.1", port: Port = 8000, workers: int = 1) -> int:
    """The HTTP API."""
    import uvicorn

    load_settings()  # a bad setting is one line here, not a traceback per process
    _share_metrics(workers)
    uvicorn.run(
        # A string, not the app: each worker process uvicorn starts imports it.
        "gateway.main:app",
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
        lifespan="on",
        # The gateway drains its streams before uvicorn starts shutting down
        # (gateway.drain); this only bounds what is left after that.
        timeout_graceful_shutdown=10,
    )
    return 0


def worker(kind: Annotated[WorkerKind, typer.Argument(help="ingest, query or sync")]) -> int:
    """An ingest, query or (folder) sync worker."""
    load_settings()
    if kind == WorkerKind.ingest:
        from ingest.__main__ import main
    elif kind == WorkerKind.sync:
        from sync.__main__ import main
    else:
        from query.__main__ import main
    main()
    return 0


def migrate_command(data_dir: StackDir = DEFAULT_DATA_DIR) -> int:
    """Upgrade the database schema, and move chunks to the vector store's current layout."""
    settings = connect(data_dir, POSTGRES, CHROMA)
    migrate(settings.database_url, settings.chroma_url)
    return 0


def llm_server(
    host: Host = "127.0.0.1",
    port: Port = 8081,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            exists=True,
            dir_okay=False,
            help="a GGUF file to serve instead of the bundled SmolLM2-135M",
        ),
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1)] = max(1, os.cpu_count() or 1),
    context: Annotated[
        int, typer.Option("--context", min=512, help="tokens of context, shared by the slots")
    ] = 16384,
    parallel: Annotated[int, typer.Option("--parallel", min=1, help="requests at once")] = 2,
) -> int:
    """An offline instruct model behind an OpenAI-compatible API (llama.cpp)."""
    from ragstream.local_llm import SMOLLM2_135M, ServerOptions, bundled_path, serve

    _configure_logging("llm-server")
    path = model if model is not None else bundled_path()
    alias = path.stem if model is not None else SMOLLM2_135M.name
    return serve(path, ServerOptions(host, port, threads, context, parallel), alias)


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("llm-server")(llm_server)
    app.command("services")(services)
    app.command("gateway")(gateway)
    app.command("worker")(worker)
    app.command("migrate")(migrate_command)
