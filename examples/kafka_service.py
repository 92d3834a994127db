"""An internal service that indexes a file through ragstream's Kafka topics,
written with plain aiokafka and asyncpg: no ragstream import, so a service in
another language can follow it line by line (docs/integration.md).

    python examples/kafka_service.py --tenant T --user U path/to/file.md

Environment: KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_PREFIX (default "rag"),
DATABASE_URL, BLOB_DIR (the folder or volume the ingest workers read),
TENANT_MAX_DOCUMENTS, TENANT_MAX_MB (the tenant's quota, as the services
have it). Prints one ``status: <status>`` line per change; exits 0 once the
document is indexed, 1 if it failed.

The document's bytes never travel on Kafka (a claim check): they go to the
blob store, a row in ``documents`` records them (the ingest worker trusts
the row, not the message, and drops a request that has none), then a
``queued`` status and the ingest request are published, keyed by document id.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

PREFIX = os.environ.get("KAFKA_TOPIC_PREFIX", "rag")
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
REQUESTS, EVENTS = f"{PREFIX}.ingest.requests", f"{PREFIX}.ingest.events"


def store_blob(tenant: uuid.UUID, doc: uuid.UUID, data: bytes) -> str:
    """Write the bytes where the workers look (``<tenant>/<document>``),
    whole or not at all; the key goes in the row and the message."""
    key = f"{tenant}/{doc}"
    path = Path(os.environ.get("BLOB_DIR", ".rag/blobs")) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(path)
    return key


async def insert_row(conn: asyncpg.Connection, row: dict[str, Any]) -> None:
    """The row, within the tenant's quota, under the lock the gateway takes."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))", str(row["tenant_id"])
        )
        used = await conn.fetchrow(
            "SELECT count(*) AS n, coalesce(sum(size_bytes), 0) AS total"
            " FROM documents WHERE tenant_id=$1",
            row["tenant_id"],
        )
        assert used is not None
        max_docs = int(os.environ.get("TENANT_MAX_DOCUMENTS", "10000"))
        max_bytes = int(os.environ.get("TENANT_MAX_MB", "10240")) * 1024 * 1024
        if used["n"] + 1 > max_docs or used["total"] + row["size_bytes"] > max_bytes:
            raise SystemExit("refused: the tenant's document quota is reached")
        columns = ", ".join(row)
        values = ", ".join(f"${n}" for n in range(1, len(row) + 1))
        await conn.execute(f"INSERT INTO documents ({columns}) VALUES ({values})", *row.values())  # noqa: S608


def message(row: dict[str, Any], kind: str, correlation_id: str, **fields: Any) -> bytes:
    """An event as the schemas (schemas/*.schema.json) describe it."""
    common = {
        "schema_version": 1,
        "type": kind,
        "correlation_id": correlation_id,
        "tenant_id": str(row["tenant_id"]),
        "user_id": str(row["user_id"]),
        "document_id": str(row["id"]),
        "created_at": datetime.now(UTC).isoformat(),
    }
    return json.dumps({**common, **fields}).encode()


async def follow_from_now(consumer: AIOKafkaConsumer) -> None:
    """Read every partition of the events topic, no consumer group, from
    the end as it is now: started before publishing, so nothing is missed."""
    await consumer.start()
    partitions = consumer.partitions_for_topic(EVENTS)
    while not partitions:
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
        partitions = consumer.partitions_for_topic(EVENTS)
    tps = [TopicPartition(EVENTS, p) for p in partitions]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)


async def submit(filename: str, data: bytes, tenant: uuid.UUID, user: uuid.UUID) -> int:
    doc, correlation_id = uuid.uuid4(), f"example-{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    row: dict[str, Any] = {
        "id": doc,
        "tenant_id": tenant,
        "user_id": user,
        "filename": filename,
        "content_type": "application/octet-stream",
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "blob_key": await asyncio.to_thread(store_blob, tenant, doc, data),
        "status": "queued",
        "chunks": 0,
        "error": None,
        "created_at": now,
        "updated_at": now,
    }
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        await insert_row(conn, row)
    finally:
        await conn.close()
    events = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await follow_from_now(events)
    await producer.start()
    try:
        key = str(doc).encode()
        # queued first: the worker's processing, on the same partition, comes after.
        await producer.send_and_wait(
            EVENTS, message(row, "ingest.status", correlation_id, status="queued"), key=key
        )
        request = message(
            row,
            "ingest.request",
            correlation_id,
            filename=row["filename"],
            content_type=row["content_type"],
            blob_key=row["blob_key"],
            size_bytes=row["size_bytes"],
            sha256=row["sha256"],
        )
        await producer.send_and_wait(REQUESTS, request, key=key)
        print(f"document: {doc}", flush=True)
        return await print_statuses(events, str(doc))
    finally:
        await producer.stop()
        await events.stop()


async def print_statuses(events: AIOKafkaConsumer, doc: str) -> int:
    async for record in events:
        event = json.loads(record.value)
        if event.get("document_id") != doc:
            continue
        extra = f" ({event['error']})" if event.get("error") else ""
        print(f"status: {event['status']}{extra}", flush=True)
        if event["status"] in ("indexed", "failed"):
            return 0 if event["status"] == "indexed" else 1
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenant", type=uuid.UUID, required=True)
    parser.add_argument("--user", type=uuid.UUID, required=True, help="the document's owner")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for it")
    parser.add_argument("file", type=Path)
    args = parser.parse_args()
    try:
        work = submit(args.file.name, args.file.read_bytes(), args.tenant, args.user)
        return asyncio.run(asyncio.wait_for(work, args.timeout))
    except TimeoutError:
        print("status: no outcome in time", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
