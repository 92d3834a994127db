"""The migrations create what the runbook names, and alembic works from the
repository root as the runbook runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from alembic import command as alembic

from shared.storage.migrate import alembic_config, upgrade
from tests.support.deployment import scratch_database

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
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    assert "0015 (head)" in result.stdout


async def _tables(conn: asyncpg.Connection) -> set[str]:
    return {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}


async def test_existing_users_become_admins_of_their_own_tenants(
    stack_env: dict[str, str],
) -> None:
    """0004 on a database of single-user tenants, then back down."""
    async with scratch_database(stack_env["DATABASE_URL"], "0003") as (own, conn):
        await conn.execute(
            "INSERT INTO users (id, tenant_id, username, password_hash)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), 'alice', 'x'),"
            " (gen_random_uuid(), gen_random_uuid(), 'bob', 'x')"
        )
        await asyncio.to_thread(upgrade, own, "head")
        rows = await conn.fetch(
            "SELECT u.username, u.role, t.name FROM users u JOIN tenants t"
            " ON t.id = u.tenant_id ORDER BY u.username"
        )
        assert [tuple(r) for r in rows] == [("alice", "admin", "alice"), ("bob", "admin", "bob")]
        await asyncio.to_thread(alembic.downgrade, alembic_config(own), "0003")
        assert not {"tenants", "api_keys", "audit_log", "token_families"} & await _tables(conn)


async def test_bm25_statistics_are_backfilled_and_kept(stack_env: dict[str, str]) -> None:
    """0005 on a database with indexed chunks: each posting gets its chunk's
    length, each tenant its statistics row, which triggers then keep; and
    back down."""
    async with scratch_database(stack_env["DATABASE_URL"], "0004") as (own, conn):
        tenant = await _seed_chunk(conn, "c1", length=7)
        await _seed_chunk(conn, "c2", length=5, tenant=tenant)
        await asyncio.to_thread(upgrade, own, "head")
        corpus = await conn.fetchrow("SELECT chunks, total_length FROM tenant_corpus")
        assert tuple(corpus) == (2, 12)
        lengths = await conn.fetch("SELECT chunk_id, length FROM chunk_terms ORDER BY 1")
        assert [tuple(r) for r in lengths] == [("c1", 7), ("c2", 5)]
        await conn.execute("DELETE FROM chunks WHERE id = 'c1'")
        corpus = await conn.fetchrow("SELECT chunks, total_length FROM tenant_corpus")
        assert tuple(corpus) == (1, 5)
        await asyncio.to_thread(alembic.downgrade, alembic_config(own), "0004")
        assert "tenant_corpus" not in await _tables(conn)


async def _seed_chunk(
    conn: asyncpg.Connection, chunk_id: str, *, length: int, tenant: uuid.UUID | None = None
) -> uuid.UUID:
    """A tenant, user, document and one chunk with one term, as 0004 stores them."""
    if tenant is None:
        tenant = uuid.uuid4()
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant, str(tenant))
    user, doc = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO users (id, tenant_id, username, password_hash) VALUES ($1, $2, $3, 'x')",
        user,
        tenant,
        str(user),
    )
    await conn.execute(
        "INSERT INTO documents (id, tenant_id, user_id, filename, content_type, size_bytes,"
        " sha256, blob_key, status) VALUES ($1, $2, $3, 'f.txt', 'text/plain', 1, $4, 'k',"
        " 'indexed')",
        doc,
        tenant,
        user,
        "0" * 64,
    )
    await conn.execute(
        "INSERT INTO chunks (id, document_id, tenant_id, user_id, chunk_index, text, length)"
        " VALUES ($1, $2, $3, $4, 0, 'text', $5)",
        chunk_id,
        doc,
        tenant,
        user,
        length,
    )
    await conn.execute(
        "INSERT INTO chunk_terms (tenant_id, term, chunk_id, tf) VALUES ($1, 'text', $2, 1)",
        tenant,
        chunk_id,
    )
    return tenant


async def test_history_becomes_conversations_with_numbered_turns(
    stack_env: dict[str, str],
) -> None:
    """0010 on a database with chat history: each (user, conversation) gets
    its row (title from the first question, turns, first and last activity),
    each exchange its number; the trigger then files new turns the same way,
    a conversation's delete takes its turns and their feedback (0011); and
    back down."""
    async with scratch_database(stack_env["DATABASE_URL"], "0009") as (own, conn):
        tenant, user, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, 't')", tenant)
        for who, name in ((user, "u"), (other, "o")):
            await conn.execute(
                "INSERT INTO users (id, tenant_id, username, password_hash)"
                " VALUES ($1, $2, $3, 'x')",
                who,
                tenant,
                name,
            )
        first, second = uuid.uuid4(), uuid.uuid4()
        exchanges = [
            (user, first, "  What is\n the   policy?  " + "x" * 90),
            (user, second, "Who approves?"),
            (user, first, "And after that?"),
            (other, first, "Same id, another user"),
        ]
        for who, conversation, question in exchanges:
            for role, content in (("user", question), ("assistant", f"answer to {question}")):
                await conn.execute(
                    "INSERT INTO chat_history (tenant_id, user_id, conversation_id,"
                    " correlation_id, role, content) VALUES ($1, $2, $3, 'c', $4, $5)",
                    tenant,
                    who,
                    conversation,
                    role,
                    content,
                )
        await asyncio.to_thread(upgrade, own, "head")
        rows = await conn.fetch(
            "SELECT user_id, id, title, turns FROM conversations ORDER BY user_id = $1, turns",
            other,
        )
        title = "What is the policy? " + "x" * 59 + "…"
        assert [tuple(r) for r in rows] == [
            (user, second, "Who approves?", 1),
            (user, first, title, 2),
            (other, first, "Same id, another user", 1),
        ]
        turns = await conn.fetch(
            "SELECT role, turn FROM chat_history WHERE user_id = $1 AND conversation_id = $2"
            " ORDER BY id",
            user,
            first,
        )
        assert [tuple(r) for r in turns] == [
            ("user", 1),
            ("assistant", 1),
            ("user", 2),
            ("assistant", 2),
        ]
        # A new exchange, as a worker of any release writes it.
        for role in ("user", "assistant"):
            await conn.execute(
                "INSERT INTO chat_history (tenant_id, user_id, conversation_id,"
                " correlation_id, role, content) VALUES ($1, $2, $3, 'c', $4, 'more')",
                tenant,
                user,
                first,
                role,
            )
        numbered = await conn.fetch(
            "SELECT id, turn FROM chat_history WHERE user_id = $1 AND conversation_id = $2"
            " AND role = 'assistant' ORDER BY id",
            user,
            first,
        )
        assert [r["turn"] for r in numbered] == [1, 2, 3]
        assert (
            await conn.fetchval(
                "SELECT turns FROM conversations WHERE user_id = $1 AND id = $2", user, first
            )
            == 3
        )
        await conn.execute(
            "INSERT INTO feedback (history_id, tenant_id, user_id, conversation_id, turn, rating)"
            " VALUES ($1, $2, $3, $4, 3, 'down')",
            numbered[-1]["id"],
            tenant,
            user,
            first,
        )
        await conn.execute("DELETE FROM conversations WHERE user_id = $1 AND id = $2", user, first)
        left = await conn.fetch("SELECT user_id, conversation_id FROM chat_history")
        assert {tuple(r) for r in left} == {(user, second), (other, first)}
        assert await conn.fetchval("SELECT count(*) FROM feedback") == 0
        await asyncio.to_thread(alembic.downgrade, alembic_config(own), "0009")
        assert not {"conversations", "feedback"} & await _tables(conn)
        assert len(await conn.fetch("SELECT * FROM chat_history")) == 4


async def test_groups_links_stay_in_their_tenant_outdate_answers_and_downgrade_to_private(
    stack_env: dict[str, str],
) -> None:
    """0014: the database itself refuses a member or a document of one tenant
    in a group of another; every membership or share change bumps the
    tenant's answer generation in its transaction; back at 0013 a document
    shared with groups is private."""
    async with scratch_database(stack_env["DATABASE_URL"], "head") as (own, conn):
        a, b = uuid.uuid4(), uuid.uuid4()
        ua, ub, group, doc = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        for tenant, user in ((a, ua), (b, ub)):
            await conn.execute(
                "INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant, str(tenant)
            )
            await conn.execute(
                "INSERT INTO users (id, tenant_id, username, password_hash) VALUES ($1, $2, $3, 'x')",
                user,
                tenant,
                str(user),
            )
        await conn.execute(
            "INSERT INTO groups (id, tenant_id, name, origin) VALUES ($1, $2, 'g', 'local')",
            group,
            a,
        )
        await conn.execute(
            "INSERT INTO documents (id, tenant_id, user_id, filename, content_type, size_bytes,"
            " sha256, blob_key, status, visibility) VALUES ($1, $2, $3, 'f.txt', 'text/plain', 1,"
            " 'x', 'k', 'indexed', 'groups')",
            doc,
            a,
            ua,
        )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO group_members (group_id, user_id, tenant_id, origin)"
                " VALUES ($1, $2, $3, 'admin')",
                group,
                ub,
                b,
            )
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "INSERT INTO group_members (group_id, user_id, tenant_id, origin)"
                " VALUES ($1, $2, $3, 'admin')",
                group,
                ub,
                a,
            )
        generation = "SELECT answer_generation FROM tenants WHERE id = $1"
        before = await conn.fetchval(generation, a)
        await conn.execute(
            "INSERT INTO group_members (group_id, user_id, tenant_id, origin)"
            " VALUES ($1, $2, $3, 'admin')",
            group,
            ua,
            a,
        )
        await conn.execute(
            "INSERT INTO document_groups (document_id, group_id, tenant_id) VALUES ($1, $2, $3)",
            doc,
            group,
            a,
        )
        await conn.execute("DELETE FROM group_members WHERE user_id = $1", ua)
        assert await conn.fetchval(generation, a) == before + 3
        assert await conn.fetchval(generation, b) == 0
        await asyncio.to_thread(alembic.downgrade, alembic_config(own), "0013")
        assert (
            await conn.fetchval("SELECT visibility FROM documents WHERE id = $1", doc) == "private"
        )
