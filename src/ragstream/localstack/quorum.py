"""Where the nodes of a local KRaft cluster listen, and the replication that
follows from their number.

Each node is both broker and controller, and every node is a voter: three
nodes keep a metadata quorum (two of three) through the loss of any one.
With three, topics are replicated to all of them and a write needs two in
sync (``min.insync.replicas=2``), as production runs Kafka (deploy/k8s): a
node may die without an acknowledged write being lost, and without writes
being refused. One node is the plain development broker, replication 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragstream.localstack.ports import HOST

# A replica per node up to three: more copies cost disk and produce latency
# and survive nothing three do not (with two in sync required).
MAX_REPLICATION = 3


@dataclass(frozen=True)
class Quorum:
    """``listeners[n - 1]``: the (client, controller) ports of node ``n``."""

    listeners: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.listeners:
            raise ValueError("a Kafka cluster needs at least one node")

    @classmethod
    def consecutive(cls, first_port: int, size: int) -> Quorum:
        """Node ``n`` on ``first_port + 2(n - 1)``, its controller on the
        port after: one node is ``--kafka-port`` and the next port, as ever."""
        return cls(tuple((first_port + 2 * n, first_port + 2 * n + 1) for n in range(size)))

    @property
    def size(self) -> int:
        return len(self.listeners)

    @property
    def node_ids(self) -> range:
        return range(1, self.size + 1)

    def node_name(self, node_id: int) -> str:
        # One node keeps the folder and log names it always had.
        return "kafka" if self.size == 1 else f"kafka-{node_id}"

    @property
    def voters(self) -> str:
        return ",".join(
            f"{node_id}@{HOST}:{controller}"
            for node_id, (_, controller) in zip(self.node_ids, self.listeners, strict=True)
        )

    @property
    def replication_factor(self) -> int:
        return min(self.size, MAX_REPLICATION)

    @property
    def min_insync_replicas(self) -> int:
        # One replica fewer than there are: writes go on with one node down.
        return max(1, self.replication_factor - 1)

    def broker_properties(self) -> dict[str, str]:
        """The cluster-wide part of each node's server.properties: the
        internal topics (consumer offsets above all: a group whose
        coordinator died with the only copy would lose its place) replicated
        like the services' topics."""
        replicas, in_sync = str(self.replication_factor), str(self.min_insync_replicas)
        return {
            "controller.quorum.voters": self.voters,
            "default.replication.factor": replicas,
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
        }

    def client_settings(self) -> dict[str, str]:
        """The settings the services need to create their topics to match
        (they ask for a replication factor, which the brokers' default does
        not override); none for one node, whose defaults already fit."""
        if self.size == 1:
            return {}
        return {
            "KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
            "KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas),
        }
