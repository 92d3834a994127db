"""Liveness, readiness, and Prometheus metrics.

Readiness answers one question, "can this replica serve its requests?", to
anyone: the status, the names of what is missing, and the reply lease. The
why (exception text, latency per dependency) is for operators: it goes to
the log and to ``rag_dependency_up`` / ``rag_dependency_check_seconds``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    multiprocess,
)
from pydantic import BaseModel, Field

from gateway.http.deps import GatewayDep
from gateway.state import Gateway
from shared.storage.migrate import schema_behind

log = structlog.get_logger(__name__)
router = APIRouter(tags=["health"])

DEPENDENCY_UP = Gauge(
    "rag_dependency_up",
    "1 if the dependency answered the last readiness check",
    ["dependency"],
    multiprocess_mode="livemin",
)
DEPENDENCY_SECONDS = Gauge(
    "rag_dependency_check_seconds",
    "How long the last readiness check of the dependency took",
    ["dependency"],
    multiprocess_mode="livemax",
)
DEPENDENCY_CHECKS = Counter(
    "rag_dependency_checks_total",
    "Readiness checks of the dependencies run (at most one a second per process)",
)
# Without these the gateway cannot serve anything; Redis (caches, leases) and
# Chroma (only deletes go there from the gateway) degrade it instead.
REQUIRED = ("postgres", "kafka")
# Not a dependency: whether the database's schema is the one this code needs.
SCHEMA = "schema"


class SchemaBehind(Exception):
    """The database's schema is older than this code's (``rag migrate``)."""


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    failed: list[str] = Field(description="What keeps the replica from serving (503)")
    degraded: list[str] = Field(description="What is down without stopping it")
    reply_lease: str = Field(description="How the replica holds its reply partition")


@dataclass(frozen=True)
class Check:
    ok: bool
    seconds: float
    error: str | None = None


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Touches no dependency."""
    return {"status": "ok"}


async def _check(probe: Callable[[], Awaitable[Any]], seconds: float) -> Check:
    began = time.perf_counter()
    try:
        async with asyncio.timeout(seconds):
            await probe()
    except TimeoutError:
        return Check(False, time.perf_counter() - began, f"no answer within {seconds:g}s")
    except Exception as exc:
        return Check(False, time.perf_counter() - began, f"{type(exc).__name__}: {exc}"[:300])
    return Check(True, time.perf_counter() - began)


async def check_dependencies(gateway: Gateway) -> dict[str, Check]:
    clients = gateway.clients
    timeout = clients.settings.dependency_timeout

    async def kafka() -> None:
        if not await clients.broker.ping(timeout):
            raise ConnectionError("broker did not answer")

    async def schema() -> None:
        behind = await schema_behind(clients.pool, gateway.revisions)
        if behind is not None:
            raise SchemaBehind(behind)

    probes: dict[str, Callable[[], Awaitable[Any]]] = {
        "postgres": lambda: clients.pool.fetchval("SELECT 1"),
        "kafka": kafka,
        "redis": clients.redis.ping,
        "chroma": clients.vectors.heartbeat,
        SCHEMA: schema,
    }
    DEPENDENCY_CHECKS.inc()
    results = await asyncio.gather(*(_check(p, timeout) for p in probes.values()))
    checks = dict(zip(probes, results, strict=True))
    for name, check in checks.items():
        if name != SCHEMA:
            DEPENDENCY_UP.labels(name).set(1 if check.ok else 0)
            DEPENDENCY_SECONDS.labels(name).set(check.seconds)
    return checks


def _log_failures(checks: dict[str, Check]) -> None:
    for name, check in checks.items():
        if check.ok:
            continue
        if name == "postgres":
            log.error("Database connection failed", error=check.error)
        elif name == SCHEMA and checks["postgres"].ok:
            log.error("Database schema is behind the code; run rag migrate", error=check.error)
        elif name == SCHEMA:
            continue  # the database is down: said above
        else:
            log.error("Dependency check failed", dependency=name, error=check.error)


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: `failed` names why"}},
)
async def ready(gateway: GatewayDep) -> JSONResponse:
    """Readiness: the database and the broker answer within
    DEPENDENCY_TIMEOUT, the database's schema is the one this code needs
    (``migrations pending`` until ``rag migrate`` ran), replies are being
    read, and the replica is not draining for a shutdown. The dependencies
    are checked at most once a second per process (gateway.readiness)."""
    checks, fresh = await gateway.readiness.get(lambda: check_dependencies(gateway))
    if fresh:
        _log_failures(checks)
    failed = [name for name in REQUIRED if not checks[name].ok]
    if checks["postgres"].ok and not checks[SCHEMA].ok:
        # New pods must not serve on an old schema during a rollout.
        failed.append("migrations pending")
    if not gateway.replies.running:
        failed.append("replies")
    if gateway.draining:
        # Shutting down: load balancers should stop sending new streams here.
        failed.append("draining")
    body: dict[str, Any] = {
        "status": "unavailable" if failed else "ready",
        "failed": failed,
        "degraded": sorted(
            n for n, c in checks.items() if n not in (*REQUIRED, SCHEMA) and not c.ok
        ),
        "reply_lease": gateway.lease.state,
    }
    return JSONResponse(body, status_code=503 if failed else 200)


def _registry() -> CollectorRegistry:
    # `rag gateway --workers N` sets the variable for every process, so one
    # scrape of any of them covers all.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)
