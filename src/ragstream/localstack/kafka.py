"""Apache Kafka in KRaft combined mode (broker and controller in one JVM),
one node or a cluster of several (``ragstream.localstack.quorum``).

The jars come from Maven Central once, into a cache shared by every data
directory; the topic data lives under ``<data_dir>/kafka/data`` (a cluster's
node ``n``: ``<data_dir>/kafka-<n>/data``) and survives restarts.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ragstream.localstack.broker import Broker, metadata_answers
from ragstream.localstack.errors import StackError
from ragstream.localstack.ports import HOST, accepts_connections
from ragstream.localstack.quorum import Quorum

logger = logging.getLogger(__name__)

KAFKA_VERSION = "3.9.1"
MAIN_CLASS = "kafka.Kafka"
NEEDS_JAVA = (
    "Java 17+ and Maven are needed to run Apache Kafka locally; install them, "
    "or use `--broker tansu` (pip-installed broker), "
    "or point KAFKA_BOOTSTRAP_SERVERS at an existing Kafka."
)

_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.ragstream</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.BrokerServer=INFO
"""


def cache_dir() -> Path:
    configured = os.environ.get("RAG_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "ragstream"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two test sessions starting at once must not fetch into the same folder.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def fetch_jars(cache: Path | None = None) -> Path:
    """The folder holding Kafka's runtime jars, fetched with Maven on first use."""
    root = (cache or cache_dir()) / "kafka" / KAFKA_VERSION
    libs, marker = root / "libs", root / "complete"
    if marker.exists():
        return libs
    with _locked(root / ".lock"):
        if marker.exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError(NEEDS_JAVA)
        # No marker means an earlier fetch was interrupted: start over.
        shutil.rmtree(libs, ignore_errors=True)
        logger.info("fetching Kafka %s jars with Maven into %s (once)", KAFKA_VERSION, libs)
        (root / "pom.xml").write_text(_POM)
        _run_maven(mvn, root, libs)
        marker.write_text(KAFKA_VERSION + "\n")
    return libs


def _run_maven(mvn: str, root: Path, libs: Path) -> None:
    log = root / "maven.log"
    args = [mvn, "-q", "-B", "-f", str(root / "pom.xml"), "dependency:copy-dependencies"]
    args += [f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
    with log.open("wb") as out:
        result = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise StackError(f"fetching Kafka {KAFKA_VERSION} with Maven failed: see {log}")


def _cluster_id(path: Path) -> str:
    # Every node of a cluster is formatted with this one id, and the nodes
    # are prepared at the same time: the first to get here writes it.
    with _locked(path.with_name(path.name + ".lock")):
        if path.exists():
            return path.read_text().strip()
        # The format kafka-storage random-uuid prints: base64url, no padding,
        # and (as Kafka's own Uuid.randomUuid does) never a leading "-", which
        # the storage tool would read as an option.
        value = "-"
        while value.startswith("-"):
            value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        path.write_text(value + "\n")
        return value


class KafkaService(Broker):
    ready_timeout = 120.0  # a cold JVM on a busy CI machine

    def __init__(
        self,
        data_dir: Path,
        port: int,
        controller_port: int | None = None,
        *,
        node_id: int = 1,
        quorum: Quorum | None = None,
        extra_properties: Mapping[str, str] | None = None,
        client_security: Mapping[str, Any] | None = None,
    ) -> None:
        """One node: ``quorum`` None. A cluster's node ``node_id``: ``port``
        and ``controller_port`` are its entry of ``quorum`` (``nodes()``
        builds them all). ``extra_properties`` override server.properties (a
        SASL or TLS listener, its JAAS config); ``client_security``: the
        aiokafka arguments the readiness probe then needs to connect."""
        super().__init__(data_dir, port)
        self.controller_port = controller_port or port + 1
        self.quorum = quorum or Quorum(((port, self.controller_port),))
        if self.quorum.listeners[node_id - 1] != (port, self.controller_port):
            raise ValueError(f"node {node_id} does not listen where the quorum says")
        self.node_id = node_id
        self.name = self.quorum.node_name(node_id)
        self.libs: Path | None = None
        self.extra_properties = dict(extra_properties or {})
        self.client_security = dict(client_security or {})

    @classmethod
    def nodes(cls, data_dir: Path, quorum: Quorum) -> list[KafkaService]:
        """Every node of ``quorum``, each with its own folder and log."""
        return [
            cls(data_dir, port, controller, node_id=node_id, quorum=quorum)
            for node_id, (port, controller) in zip(quorum.node_ids, quorum.listeners, strict=True)
        ]

    def is_ready(self) -> bool:
        return accepts_connections(self.port) and metadata_answers(self.url, self.client_security)

    def ports(self) -> dict[int, str]:
        hint = (
            "pass --kafka-port (the controller takes the next port) or set KAFKA_BOOTSTRAP_SERVERS"
        )
        if self.quorum.size > 1:
            hint = (
                "pass --kafka-port (node n takes port + 2(n - 1), its controller the next)"
                " or set KAFKA_BOOTSTRAP_SERVERS"
            )
        return {
            self.port: f"pass --kafka-port or set {self.env_var} to use that broker",
            self.controller_port: f"Kafka's controller needs it: {hint}",
        }

    @property
    def classpath(self) -> str:
        if self.libs is None:
            raise StackError("kafka was not prepared")
        return str(self.libs / "*")

    def prepare(self) -> None:
        super().prepare()
        if shutil.which("java") is None:
            raise StackError(NEEDS_JAVA)
        self.libs = fetch_jars()
        (self.home / "server.properties").write_text(self.server_properties())
        (self.home / "log4j.properties").write_text(_LOG4J)
        self._format_storage()

    def server_properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            **self.quorum.broker_properties(),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "num.partitions": "1",
            **self.extra_properties,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _format_storage(self) -> None:
        # Formatting twice would fail; skipping it keeps topics across restarts.
        if (self.home / "data" / "meta.properties").exists():
            return
        # Node 1's folder holds the id for all (one node: its own, as before).
        cluster_id = _cluster_id(self.data_dir / self.quorum.node_name(1) / "cluster_id")
        args = ["java", "-cp", self.classpath, "kafka.tools.StorageTool", "format"]
        args += ["-t", cluster_id, "-c", str(self.home / "server.properties")]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise StackError(f"formatting Kafka storage failed: {' '.join(last)}")

    @property
    def heap_mb(self) -> int:
        # A cluster's nodes run side by side on one machine: smaller each.
        return 512 if self.quorum.size == 1 else 384

    def command(self) -> list[str]:
        log4j = self.home / "log4j.properties"
        return [
            "java",
            f"-Xms{self.heap_mb // 2}m",
            f"-Xmx{self.heap_mb}m",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}",
            "-cp",
            self.classpath,
            MAIN_CLASS,
            str(self.home / "server.properties"),
        ]
