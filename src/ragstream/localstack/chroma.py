"""A Chroma server (``chroma run``) persisting under ``<data_dir>/chroma``."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from ragstream.localstack.binaries import find_binary
from ragstream.localstack.ports import HOST
from ragstream.localstack.service import Service


def chroma_binary() -> Path:
    return find_binary(
        "chroma",
        bundled=Path(sys.executable).parent / "chroma",
        hint="pip install chromadb, or set CHROMA_URL",
    )


class ChromaService(Service):
    name = "chroma"
    env_var = "CHROMA_URL"
    option = "--chroma-port"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(chroma_binary()),
            "run",
            "--path",
            str(self.home),
            "--host",
            HOST,
            "--port",
            str(self.port),
        ]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "ANONYMIZED_TELEMETRY": "False"}

    def is_ready(self) -> bool:
        response = httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1.0)
        return response.status_code == 200
