"""The ingest queue's PostgreSQL side: documents wait here, ``queued`` and
not yet released, until a releaser publishes their requests to Kafka, never
more than a window of them released and unsettled per tenant.

A row's ``request_topic`` names the deployment whose releasers may release
it (several deployments can share a database under other topic prefixes);
``released_at`` is ``NULL`` while it waits; ``lane`` puts a tenant's
interactive uploads before its bulk work. Changes that let more be released
notify ``CHANNEL`` (triggers, migration 0009), so releasers wake at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from shared.storage.documents import COLUMNS, FIELDS, Conn, Db, Document

CHANNEL = "rag_ingest_queue"

# One release pass at a time per database: passes read how many each tenant
# has released and must not both fill the same free places. Transaction
# scoped, so a releaser that dies mid-pass lets go with its connection.
_TAKE_TURN = "SELECT pg_advisory_xact_lock(hashtextextended('ingest-release', 0))"

# For each tenant with documents waiting on ``topic`` ($1), its next ones in
# release order (interactive before bulk, oldest first), as many as it has
# free places below the window ($2) for documents released and unsettled.
_PICK = f"""
WITH released AS (
    SELECT tenant_id, count(*)::int AS n FROM documents
    WHERE request_topic = $1 AND status IN ('queued', 'processing') AND released_at IS NOT NULL
    GROUP BY tenant_id
), waiting AS (
    SELECT DISTINCT tenant_id FROM documents
    WHERE request_topic = $1 AND status = 'queued' AND released_at IS NULL
)
SELECT next.* FROM waiting w LEFT JOIN released r USING (tenant_id)
CROSS JOIN LATERAL (
    SELECT {COLUMNS}, correlation_id FROM documents d
    WHERE d.request_topic = $1 AND d.tenant_id = w.tenant_id
      AND d.status = 'queued' AND d.released_at IS NULL
    ORDER BY d.lane = 'bulk', d.created_at, d.id
    LIMIT greatest($2 - coalesce(r.n, 0), 0)
    FOR UPDATE OF d SKIP LOCKED
) AS next
ORDER BY next.tenant_id, next.lane = 'bulk', next.created_at, next.id
"""  # noqa: S608


_WAIT_AGAIN = f"""
UPDATE documents AS d SET status = 'queued', error = NULL, attempts = 0, updated_at = now(),
    lane = 'bulk', released_at = NULL, request_topic = $3, correlation_id = c.cid,
    request_partition = NULL, request_offset = NULL
FROM unnest($1::uuid[], $2::text[]) AS c(id, cid)
WHERE d.id = c.id AND d.status = 'indexed'
RETURNING {", ".join("d." + name for name in FIELDS)}
"""  # noqa: S608


async def hand_over(db: Db, doc_id: UUID, topic: str, correlation_id: str) -> None:
    """The document waits for a releaser of ``topic``'s deployment; its
    request will carry ``correlation_id``."""
    await db.execute(
        "UPDATE documents SET request_topic = $2, correlation_id = $3,"
        " request_partition = NULL, request_offset = NULL"
        " WHERE id = $1 AND status = 'queued' AND released_at IS NULL",
        doc_id,
        topic,
        correlation_id,
    )


async def wait_again(
    conn: Conn, ids: Sequence[UUID], correlation_ids: Sequence[str], topic: str
) -> list[Document]:
    """Those of ``ids`` still indexed wait again, as bulk work (a re-index),
    each request to carry its ``correlation_ids``; one deleted or already
    being ingested is left alone. Locked until ``conn``'s transaction ends:
    a concurrent delete waits."""
    rows = await conn.fetch(
        _WAIT_AGAIN,
        list(ids),
        list(correlation_ids),
        topic,
    )
    return [Document.from_record(row) for row in rows]


async def pick(conn: Conn, topic: str, window: int) -> list[tuple[Document, str]]:
    """The documents to release now, with their requests' correlation ids,
    in turns across tenants (every tenant's first, then every tenant's
    second, ...). Call inside a transaction: it waits for any other pass,
    and the rows stay locked until it ends."""
    await conn.execute(_TAKE_TURN)
    rows = await conn.fetch(_PICK, topic, window)
    turns: dict[UUID, int] = {}
    places: list[tuple[int, str]] = []
    for row in rows:  # each tenant's in its release order
        turns[row["tenant_id"]] = turns.get(row["tenant_id"], -1) + 1
        places.append((turns[row["tenant_id"]], str(row["tenant_id"])))
    order = sorted(range(len(rows)), key=places.__getitem__)
    return [
        (Document.from_record(rows[n]), rows[n]["correlation_id"] or f"release-{rows[n]['id']}")
        for n in order
    ]


async def partition_loads(conn: Conn, topic: str) -> dict[int, int]:
    """Documents released on ``topic`` and not yet settled, per partition."""
    rows = await conn.fetch(
        "SELECT request_partition AS p, count(*)::int AS n FROM documents"
        " WHERE request_topic = $1 AND status IN ('queued', 'processing')"
        " AND released_at IS NOT NULL AND request_partition IS NOT NULL GROUP BY 1",
        topic,
    )
    return {row["p"]: row["n"] for row in rows}
