"""``rag worker sync``: one sync worker, configured from the environment."""

from __future__ import annotations

import asyncio

from shared.config import Settings
from sync.worker import run


def main() -> None:
    asyncio.run(run(Settings()))


if __name__ == "__main__":
    main()
