"""The services' producers, as a cluster needs them: every broker of
KAFKA_BOOTSTRAP_SERVERS to bootstrap from, writes acknowledged by the
in-sync replicas (``acks=all``), retries never writing twice (idempotence)."""

from __future__ import annotations

from shared.config import Settings
from shared.runtime.kafka import bootstrap_servers, create_broker


def test_every_bootstrap_server_is_its_own_address() -> None:
    # FastStream reads a string as one address: "a:1,b:2" would be one host.
    settings = Settings(kafka_bootstrap_servers="a:9092, b:9092,c:9092,")
    assert bootstrap_servers(settings) == ["a:9092", "b:9092", "c:9092"]
    connection = create_broker(settings, "test")._connection_kwargs
    assert connection["bootstrap_servers"] == ["a:9092", "b:9092", "c:9092"]


def test_producers_wait_for_the_in_sync_replicas_and_never_write_twice() -> None:
    connection = create_broker(Settings(), "test")._connection_kwargs
    assert (connection["acks"], connection["enable_idempotence"]) == ("all", True)
