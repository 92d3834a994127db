"""New pods must not serve on an old schema: a gateway whose database is
behind the code's migrations answers readiness 503 ``migrations pending``
until ``rag migrate`` has run, then 200 without a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from shared.storage.migrate import upgrade
from tests.support.deployment import scratch_database
from tests.support.processes import start_gateway


async def _ready(client: httpx.AsyncClient, status: int, timeout: float = 10) -> dict[str, object]:
    """The readiness body once it answers ``status`` (checks are a second old at most)."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get("/health/ready")
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            body: dict[str, object] = response.json()
            return body
        await asyncio.sleep(0.3)


async def test_readiness_waits_for_the_migrations(app_env: dict[str, str], log_dir: Path) -> None:
    async with scratch_database(app_env["DATABASE_URL"], "0008") as (url, _conn):
        gateway = start_gateway("gateway-old-schema", {**app_env, "DATABASE_URL": url}, log_dir)
        try:
            async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=10) as client:
                body = await _ready(client, 503)
                assert body["failed"] == ["migrations pending"], body
                assert (await client.get("/health")).status_code == 200  # alive all along
                await asyncio.to_thread(upgrade, url)
                body = await _ready(client, 200)
                assert body["failed"] == [], body
            assert "Database schema is behind the code" in gateway.log()
        finally:
            gateway.stop()
