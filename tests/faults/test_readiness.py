"""Postgres stops under a running gateway: readiness says so, liveness does
not, requests get 503 (never 500), and everything recovers when it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ragstream.localstack.ports import free_ports
from ragstream.localstack.postgres import PostgresService
from shared.storage.migrate import upgrade
from tests.support.processes import Component, start_gateway


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[PostgresService]:
    [port] = free_ports(1)
    postgres = PostgresService(tmp_path, port)
    postgres.start()
    yield postgres
    postgres.stop()


@pytest.fixture
def gateway_on_own_postgres(
    app_env: dict[str, str], log_dir: Path, own_postgres: PostgresService
) -> Iterator[Component]:
    upgrade(own_postgres.url)
    gateway = start_gateway(
        "gateway-own-pg", {**app_env, "DATABASE_URL": own_postgres.url}, log_dir
    )
    yield gateway
    gateway.stop()


def _ready(base_url: str) -> httpx.Response:
    return httpx.get(f"{base_url}/health/ready", timeout=10)


def test_readiness_fails_and_recovers_with_postgres(
    gateway_on_own_postgres: Component, own_postgres: PostgresService
) -> None:
    base = gateway_on_own_postgres.base_url or ""
    assert _ready(base).status_code == 200

    own_postgres.stop()
    # Readiness checks at most once a second (gateway.readiness): it may
    # answer from the last check for up to a second, then says so.
    stopped = time.monotonic()
    response = _ready(base)
    while response.status_code == 200 and time.monotonic() - stopped < 5:
        time.sleep(0.2)
        response = _ready(base)
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["failed"], body["degraded"]) == ("unavailable", ["postgres"], [])
    # The why is for operators: in the log and the metrics, not in the answer.
    assert "Error" not in response.text and "refused" not in response.text.lower()
    assert "Database connection failed" in gateway_on_own_postgres.log()
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    assert 'rag_dependency_up{dependency="postgres"} 0.0' in metrics
    assert 'rag_dependency_up{dependency="kafka"} 1.0' in metrics
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    login = httpx.post(
        f"{base}/api/auth/login", json={"username": "someone", "password": "a-long-password"}
    )
    assert login.status_code == 503
    assert "unavailable" in login.json()["detail"]

    own_postgres.start()
    deadline = time.monotonic() + 30
    while _ready(base).status_code != 200:
        assert time.monotonic() < deadline, "readiness did not recover"
        time.sleep(0.5)
