"""``rag worker query``: one query.worker, configured from the environment."""

from __future__ import annotations

import asyncio

from query.worker import run
from shared.config import Settings


def main() -> None:
    asyncio.run(run(Settings()))


if __name__ == "__main__":
    main()
