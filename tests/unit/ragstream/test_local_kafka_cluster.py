"""The local Kafka as one node or a three-node KRaft cluster: where each
node listens and keeps its data, what its server.properties say, and what
the services are told to match it (``rag services --kafka-brokers 3``).
Nothing is started here: tests/faults/test_kafka_failover.py runs a cluster."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ragstream.localstack import kafka
from ragstream.localstack.errors import StackError
from ragstream.localstack.kafka import KafkaService
from ragstream.localstack.quorum import Quorum
from ragstream.localstack.stack import LocalStack, StackConfig
from ragstream.up import broker_env

EXTERNAL = {"DATABASE_URL": "postgresql://x", "REDIS_URL": "redis://x", "CHROMA_URL": "http://x"}


def _properties(node: KafkaService) -> dict[str, str]:
    lines = node.server_properties().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_one_node_is_the_development_broker_it_always_was(tmp_path: Path) -> None:
    [node] = KafkaService.nodes(tmp_path, Quorum(((9092, 9093),)))
    assert (node.name, node.home, node.log_path) == (
        "kafka",
        tmp_path / "kafka",
        tmp_path / "logs" / "kafka.log",
    )
    settings = _properties(node)
    assert settings["node.id"] == "1"
    assert settings["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert settings["offsets.topic.replication.factor"] == "1"
    assert settings["min.insync.replicas"] == "1"
    assert node.heap_mb == 512


def test_three_nodes_vote_together_and_replicate_three_times(tmp_path: Path) -> None:
    quorum = Quorum.consecutive(19092, 3)
    assert quorum.listeners == ((19092, 19093), (19094, 19095), (19096, 19097))
    nodes = KafkaService.nodes(tmp_path, quorum)
    assert [n.name for n in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert len({n.home for n in nodes} | {n.log_path for n in nodes}) == 6
    voters = "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    for node_id, node in enumerate(nodes, start=1):
        settings = _properties(node)
        assert settings["node.id"] == str(node_id)
        assert settings["controller.quorum.voters"] == voters
        assert settings["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        )
        assert settings["log.dirs"] == str(tmp_path / f"kafka-{node_id}" / "data")
        # Consumer groups' offsets survive a node as the topics do.
        assert settings["default.replication.factor"] == "3"
        assert settings["offsets.topic.replication.factor"] == "3"
        assert settings["min.insync.replicas"] == "2"
        assert settings["transaction.state.log.min.isr"] == "2"
        assert node.heap_mb == 384  # three JVMs side by side
    assert set(nodes[0].ports()) == {19092, 19093}


def test_a_node_must_listen_where_the_quorum_says(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="node 2"):
        KafkaService(tmp_path, 9092, 9093, node_id=2, quorum=Quorum.consecutive(9092, 3))


def test_every_node_is_formatted_with_one_cluster_id(tmp_path: Path) -> None:
    # The nodes are prepared at the same time: one id, whoever writes it.
    path = tmp_path / "kafka-1" / "cluster_id"
    with ThreadPoolExecutor(max_workers=3) as pool:
        ids = set(pool.map(lambda _: kafka._cluster_id(path), range(3)))
    assert len(ids) == 1 and path.read_text().strip() in ids


def test_a_three_broker_stack_tells_the_services_its_replication(tmp_path: Path) -> None:
    config = StackConfig.ephemeral(tmp_path, external=EXTERNAL, kafka_brokers=3)
    stack = LocalStack(config)
    assert [node.name for node in stack.services] == ["kafka-1", "kafka-2", "kafka-3"]
    assert stack.kafka is stack.kafka_nodes[0]
    ports = [port for pair in config.kafka_node_ports for port in pair]
    assert len(set(ports)) == 6
    # Every node, so that clients bootstrap with any one of them down.
    assert stack.env["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(
        f"127.0.0.1:{client}" for client, _ in config.kafka_node_ports
    )
    assert stack.broker_settings == {
        "KAFKA_REPLICATION_FACTOR": "3",
        "KAFKA_MIN_INSYNC_REPLICAS": "2",
    }
    given = broker_env(stack, {"KAFKA_REPLICATION_FACTOR": "1"})
    assert given["KAFKA_REPLICATION_FACTOR"] == "3"


def test_one_broker_and_tansu_keep_their_settings(tmp_path: Path) -> None:
    one = LocalStack(StackConfig.ephemeral(tmp_path, external=EXTERNAL))
    assert one.broker_settings == {}
    assert "," not in one.env["KAFKA_BOOTSTRAP_SERVERS"]
    tansu = LocalStack(StackConfig.ephemeral(tmp_path, broker="tansu", external=EXTERNAL))
    assert tansu.broker_settings == {"KAFKA_ENABLE_IDEMPOTENCE": "false"}
    outside = {**EXTERNAL, "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}
    given = LocalStack(StackConfig(tmp_path, broker="tansu", external=outside))
    assert given.broker_settings == {}


def test_ports_of_a_cluster_follow_kafka_port(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, kafka_port=29092, kafka_brokers=3)
    assert config.kafka_quorum == Quorum.consecutive(29092, 3)
    single = StackConfig(tmp_path, kafka_port=29092, kafka_controller_port=30000)
    assert single.kafka_quorum.listeners == ((29092, 30000),)


@pytest.mark.parametrize(
    ("brokers", "broker", "message"),
    [(2, "kafka", "must be 1 or 3"), (5, "kafka", "must be 1 or 3"), (3, "tansu", "one node")],
)
def test_other_cluster_sizes_are_refused(
    tmp_path: Path, brokers: int, broker: str, message: str
) -> None:
    with pytest.raises(StackError, match=message):
        StackConfig(tmp_path, broker=broker, kafka_brokers=brokers)  # type: ignore[arg-type]
