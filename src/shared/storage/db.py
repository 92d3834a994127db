"""The Postgres connection pool, built once per process."""

from __future__ import annotations

import json

import asyncpg

from shared.config import Settings


def asyncpg_dsn(url: str) -> str:
    """Accept SQLAlchemy-style URLs too (``postgresql+asyncpg://``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(settings: Settings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url),
        min_size=1,
        max_size=settings.database_pool_size,
        timeout=settings.dependency_timeout * 5,
        command_timeout=30,
        init=_init_connection,
    )
    assert pool is not None
    return pool
