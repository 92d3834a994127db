"""One writer at a time into a tenant's vector collections, across processes.

Chroma 1.5 loses points from a collection's HNSW graph when two writes to it
are applied at once: measured against a real server, two threads upserting
41 documents into one new collection (an outlier first, then 40 similar
ones) left the first document unreachable in 6 of 8 runs; its row, metadata
and count were intact, and neither an unfiltered nor a filtered query found
it. The same writes one at a time lost nothing in 16 runs. Ingest workers run
in parallel, so two of them indexing one tenant's documents wrote at once: a
document reported ``indexed`` could not be found (the "reindex race" of
tests/e2e/test_backup_restore.py, which was this, seen in the chat before the
re-index touched anything).

So every write into a tenant's collections (upsert, delete, metadata update)
holds a PostgreSQL advisory lock for that tenant for the length of the call:
PostgreSQL is what every writer (ingest workers, gateway, reconciler) already
shares, and a transaction-scoped lock is released even if the process dies.
Embedding, the expensive part of indexing, stays parallel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

# A namespace of its own: the quota check locks the bare tenant id.
_KEY = "SELECT pg_advisory_xact_lock(hashtextextended('vector-writes:' || $1::text, 0))"


class VectorWriteLock:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def hold(self, tenant_id: UUID) -> AsyncIterator[None]:
        """While inside, no other holder writes into this tenant's collections."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_KEY, str(tenant_id))
            yield
