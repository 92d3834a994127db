"""A Chroma server (``chroma run``) persisting under ``<data_dir>/chroma``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx

from ragstream.localstack.errors import StackError
from ragstream.localstack.ports import HOST
from ragstream.localstack.service import Service


def chroma_binary() -> Path:
    # The venv's own script first: PATH may hold another install's version.
    beside = Path(sys.executable).parent / "chroma"
    if beside.is_file():
        return beside
    found = shutil.which("chroma")
    if found is None:
        raise StackError("the chroma command was not found: pip install chromadb or set CHROMA_URL")
    return Path(found)


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
