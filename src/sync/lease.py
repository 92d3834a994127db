"""A worker's hold on the source it runs, kept alive while the run goes on.

The lease is a row lock in time (``sources.lease_owner``/``lease_until``),
renewed every third of ``SYNC_LEASE_SECONDS``: a worker that dies (SIGKILL,
a lost node) stops renewing, and once the lease lapses another worker
takes the source over. A renewal that finds the lease gone (the worker
stalled past it, and another took over) marks it lost; the run stops at
its next step, and its writes are refused meanwhile (``sources._HELD``).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from uuid import UUID

import asyncpg
import structlog

from shared.storage import sources
from shared.storage.sources import LeaseLost

log = structlog.get_logger(__name__)


class Lease:
    def __init__(self, pool: asyncpg.Pool, source_id: UUID, worker: str, seconds: float) -> None:
        self.pool = pool
        self.source_id = source_id
        self.worker = worker
        self.seconds = seconds
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(str(self.source_id))

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                held = await sources.renew(self.pool, self.source_id, self.worker, self.seconds)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # Try again at the next third: the lease outlives two misses.
                log.warning("Sync lease not renewed", error=type(exc).__name__)
                continue
            if not held:
                log.warning("Sync lease lost", source_id=str(self.source_id))
                self.lost = True
                return

    async def __aenter__(self) -> Lease:
        self._task = asyncio.create_task(self._keep())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
