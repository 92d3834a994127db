"""``rag migrate``: the alembic migrations, and the vector store's layout."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

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
