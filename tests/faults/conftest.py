"""The fault suite's own stack: Kafka, PostgreSQL, Redis and Chroma that a
test may stop, kill and restart without disturbing the rest of the suite.

``fault_stack.stack`` holds the service objects (``kafka``, ``postgres``,
``redis``, ``chroma``, each with ``stop()`` and ``start()``). Each test gets a
topic prefix and blob folder of its own, and every component it starts
through ``fault_stack`` is stopped when it ends.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ragstream.localstack.stack import LocalStack, StackConfig
from shared.storage.migrate import upgrade
from tests.support.processes import Component, start_gateway, start_worker


@dataclass
class FaultStack:
    stack: LocalStack
    env: dict[str, str]
    log_dir: Path
    started: list[Component] = field(default_factory=list)

    def gateway(self, name: str, **overrides: str) -> Component:
        component = start_gateway(name, {**self.env, **overrides}, self.log_dir)
        self.started.append(component)
        return component

    def worker(self, kind: str, name: str, **overrides: str) -> Component:
        component = start_worker(kind, {**self.env, **overrides}, self.log_dir, name=name)
        self.started.append(component)
        return component

    def restart(self, component: Component) -> Component:
        """The same component again, as a new process with the same settings."""
        self.started.remove(component)
        if component.base_url is not None:
            raise ValueError("restart workers only; a gateway gets a new port")
        kind = "ingest" if "ingest" in component.name else "query"
        return self.worker(kind, component.name, **component.env)

    def stop_all(self) -> None:
        for component in reversed(self.started):
            component.stop()
        self.started.clear()


@pytest.fixture(scope="session")
def _fault_infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(StackConfig.ephemeral(tmp_path_factory.mktemp("fault-stack")))
    stack.start()
    upgrade(stack.env["DATABASE_URL"])
    try:
        yield stack
    finally:
        stack.stop()


def app_env(infra: LocalStack, blob_dir: Path) -> dict[str, str]:
    """The services' settings on ``infra``, with a topic prefix and blob
    folder of their own."""
    return {
        **infra.env,
        # What its broker needs of them (a cluster's replication).
        **infra.broker_settings,
        "SECRET_KEY": secrets.token_hex(32),
        "BLOB_DIR": str(blob_dir),
        "KAFKA_TOPIC_PREFIX": f"fault-{uuid.uuid4().hex[:8]}",
        "LOG_LEVEL": "INFO",
        "ALLOW_REGISTRATION": "true",
        # Every test signs in from 127.0.0.1: the per-IP limit is tests/e2e/test_limits.py's.
        "LOGIN_ATTEMPTS_PER_MINUTE": "10000",
        # Loads of uploads at once, from one user: the cap is test_upload_admission.py's.
        "MAX_CONCURRENT_UPLOADS": "1000",
    }


@pytest.fixture
def fault_stack(_fault_infra: LocalStack, tmp_path: Path, log_dir: Path) -> Iterator[FaultStack]:
    faults = FaultStack(_fault_infra, app_env(_fault_infra, tmp_path / "blobs"), log_dir)
    try:
        yield faults
    finally:
        faults.stop_all()
        # A test that stopped a service and failed must not leave it down.
        for service in _fault_infra.services:
            if not service.alive:
                service.start()
