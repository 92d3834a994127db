"""The migrations create what the runbook names, and alembic works from the
repository root as the runbook runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from shared.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]


async def test_tables_and_runbook_indexes_exist(stack_env: dict[str, str]) -> None:
    # Alembic runs its own event loop: keep it off this one.
    await asyncio.to_thread(upgrade, stack_env["DATABASE_URL"])
    conn = await asyncpg.connect(stack_env["DATABASE_URL"])
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
        indexes = {r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes")}
    finally:
        await conn.close()
    assert {"users", "documents", "chat_history", "alembic_version"} <= tables
    assert {"idx_chat_history_user_id", "idx_documents_user_id"} <= indexes


def test_python_m_alembic_from_the_repository_root(stack_env: dict[str, str]) -> None:
    env = {**os.environ, "DATABASE_URL": stack_env["DATABASE_URL"]}
    for command in (["upgrade", "head"], ["current"]):
        result = subprocess.run(
            [sys.executable, "-m", "alembic", *command],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert "0003 (head)" in result.stdout
