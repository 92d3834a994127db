"""Liveness, readiness, and Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.deps import GatewayDep

log = structlog.get_logger(__name__)
router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Touches no dependency."""
    return {"status": "ok"}


async def _check(probe: Callable[[], Awaitable[Any]], seconds: float) -> str:
    try:
        async with asyncio.timeout(seconds):
            await probe()
    except TimeoutError:
        return f"failed: no answer within {seconds:g}s"
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}"[:300]
    return "ok"


@router.get("/health/ready")
async def ready(gateway: GatewayDep) -> JSONResponse:
    """Readiness: every dependency answers within DEPENDENCY_TIMEOUT."""
    clients = gateway.clients
    timeout = clients.settings.dependency_timeout

    async def kafka() -> None:
        if not await clients.broker.ping(timeout):
            raise ConnectionError("broker did not answer")

    probes: dict[str, Callable[[], Awaitable[Any]]] = {
        "postgres": lambda: clients.pool.fetchval("SELECT 1"),
        "kafka": kafka,
        "redis": clients.redis.ping,
        "chroma": clients.vectors.heartbeat,
    }
    results = await asyncio.gather(*(_check(p, timeout) for p in probes.values()))
    checks = dict(zip(probes, results, strict=True))
    if checks["postgres"] != "ok":
        log.error("Database connection failed", error=checks["postgres"])
    failed = sorted(name for name, result in checks.items() if result != "ok")
    if failed:
        for name in failed:
            if name != "postgres":
                log.error("Dependency check failed", dependency=name, error=checks[name])
        body = {"status": "unavailable", "failed": failed, "checks": checks}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
