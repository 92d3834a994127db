"""Session fixtures: real Kafka, PostgreSQL, Redis and Chroma, started here
(or taken from the environment when all four URLs are set), migrated, and a
gateway with one ingest and one query worker running against them."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from shared.storage.migrate import upgrade
from tests.support.processes import Component, start_gateway, start_worker

if TYPE_CHECKING:
    from ragstream.localstack.s3 import S3Service
    from tests.support.oidc_provider import OidcProvider

INFRA_VARS = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL", "CHROMA_URL")


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if all(os.environ.get(name) for name in INFRA_VARS):
        yield {name: os.environ[name] for name in INFRA_VARS}
        return
    from ragstream.localstack.stack import LocalStack, StackConfig

    stack = LocalStack(StackConfig.ephemeral(tmp_path_factory.mktemp("stack")))
    stack.start()
    try:
        yield stack.env
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    """An S3-protocol server (s3s-fs, built with cargo once and cached) on a
    free loopback port, with its bucket: the S3 blob store's tests run
    against it. Started only by the tests that ask for it."""
    from ragstream.localstack.ports import free_port
    from ragstream.localstack.s3 import S3Service

    service = S3Service(tmp_path_factory.mktemp("s3"), free_port())
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def app_env(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    upgrade(stack_env["DATABASE_URL"])
    return {
        **stack_env,
        "SECRET_KEY": secrets.token_hex(32),
        "BLOB_DIR": str(tmp_path_factory.mktemp("blobs")),
        # A prefix of its own: runs sharing a broker never see each other.
        "KAFKA_TOPIC_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        "MAX_UPLOAD_MB": "1",
        "LOG_LEVEL": "INFO",
        "ALLOW_REGISTRATION": "true",
        # Every test signs in from 127.0.0.1: the per-IP limit is tests/e2e/test_limits.py's.
        "LOGIN_ATTEMPTS_PER_MINUTE": "10000",
        # Likewise every forged token of the adversarial tests.
        "AUTH_FAILURES_PER_MINUTE": "10000",
        # Quota races upload six at once; the cap is test_upload_admission.py's.
        "MAX_CONCURRENT_UPLOADS": "10",
        # Folder sync's sources live under here (tests/e2e/test_sync.py).
        "SYNC_ROOTS": json.dumps([str(tmp_path_factory.mktemp("sync-roots"))]),
    }


@pytest.fixture(scope="session")
def workers(app_env: dict[str, str], log_dir: Path) -> Iterator[list[Component]]:
    started = [start_worker("ingest", app_env, log_dir), start_worker("query", app_env, log_dir)]
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def gateway(
    app_env: dict[str, str], log_dir: Path, workers: list[Component]
) -> Iterator[Component]:
    component = start_gateway("gateway", app_env, log_dir)
    yield component
    component.stop()


@pytest.fixture
async def client(gateway: Component) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """A real OpenID provider (tests/support/oidc: oidc-provider under Node)
    on a free loopback port. Started only by the tests that ask for it."""
    from tests.support.oidc_provider import OidcProvider

    provider = OidcProvider(tmp_path_factory.mktemp("oidc") / "provider.log")
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def oidc_gateway(
    app_env: dict[str, str], log_dir: Path, workers: list[Component], oidc_provider: OidcProvider
) -> Iterator[Component]:
    """A gateway that takes the provider's tokens, beside the session's
    gateway (the same workers, database and topics)."""
    from tests.support.oidc_provider import gateway_settings

    settings = gateway_settings(oidc_provider)
    component = start_gateway("gateway-oidc", {**app_env, **settings}, log_dir)
    # The web sign-in's redirect URI, now that the gateway has its address.
    oidc_provider.allow_redirect(f"{component.base_url}/api/auth/oidc/callback")
    yield component
    component.stop()


@pytest.fixture
async def oidc_client(oidc_gateway: Component) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=oidc_gateway.base_url or "", timeout=30) as http:
        yield http
