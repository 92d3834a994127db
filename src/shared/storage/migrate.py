"""``rag migrate``: the alembic migrations, and the vector store's layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from shared.config import Settings
from shared.storage.vector_layout import split_by_tenant
from shared.storage.vectorstore import connect_chroma

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would read a '%' in a password as a reference.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def upgrade_vectors(chroma_url: str) -> int:
    """Chunks stored in an older layout moved to the current one; how many."""
    return split_by_tenant(connect_chroma(Settings(chroma_url=chroma_url)))


@dataclass(frozen=True)
class Revisions:
    """The schema revisions this code knows, and the one it needs."""

    head: str
    known: frozenset[str]


def code_revisions() -> Revisions:
    script = ScriptDirectory.from_config(alembic_config(""))
    head = script.get_current_head()
    assert head is not None
    return Revisions(head, frozenset(r.revision for r in script.walk_revisions()))


async def schema_behind(pool: asyncpg.Pool, revisions: Revisions) -> str | None:
    """Why the database's schema is behind this code's; ``None`` when it is
    not. A revision this code does not know is a later release's: its
    migrations only add, so this code still runs on it."""
    try:
        current = await pool.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        current = None
    if current == revisions.head or (current is not None and current not in revisions.known):
        return None
    return f"the database is at {current or 'no revision'}; this code needs {revisions.head}"
