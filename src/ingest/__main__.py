"""``rag worker ingest``: one ingest worker, configured from the environment."""

from __future__ import annotations

import asyncio

from ingest.worker import run
from shared.config import Settings


def main() -> None:
    asyncio.run(run(Settings()))


if __name__ == "__main__":
    main()
