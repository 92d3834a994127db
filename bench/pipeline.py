"""#1 pipeline overhead and #4 chat throughput: the same chats through
gateway → Kafka → query worker → Kafka → SSE, and through the in-process
baseline (``bench.inprocess``), alternated in rounds so that a busy machine
weighs on both alike."""

from __future__ import annotations

from typing import Any

from bench import hops
from bench.client import StreamResult, stream_chat
from bench.common import (
    CHAT_RATE,
    CHAT_TOKENS,
    ChatTenant,
    Context,
    CpuMeter,
    chat_tenant,
    closed_loop,
    run_n,
)
from bench.inprocess import InProcess, in_process
from bench.results import Figure, pct, summary_ms
from bench.stack import Deployment, Proc

LEVELS = (1, 10, 100)
P95_LIMIT = 3.0  # seconds: the runbook's latency alert
# The worker answers up to this many chats at once (QUERY_CONCURRENCY): high
# enough that 100 streams measure the hops, not a queue before the worker.
WORKER_CONCURRENCY = "100"
# Between one user's chats a gateway's producer sits idle about this long.
IDLE_BEFORE_HOP = 0.1


class Chats:
    """One chat through either path, for the same tenant and questions."""

    def __init__(self, gateway: Proc, local: InProcess, tenant: ChatTenant) -> None:
        self.gateway, self.local, self.tenant = gateway, local, tenant

    def _question(self, i: int) -> str:
        return self.tenant.questions[i % len(self.tenant.questions)]

    async def pipeline(self, i: int) -> StreamResult:
        body = {"message": self._question(i)}
        return _checked(await stream_chat(self.gateway.base_url, self.tenant.account.token, body))

    async def baseline(self, i: int) -> StreamResult:
        return _checked(await self.local.chat(self.tenant.account, self._question(i)))


def _checked(result: StreamResult) -> StreamResult:
    if result.status != 200 or result.terminal != "done" or result.tokens != CHAT_TOKENS:
        raise RuntimeError(f"a benchmark chat went wrong: {result}")
    return result


async def run(ctx: Context) -> list[Figure]:
    with ctx.infra.deployment(QUERY_CONCURRENCY=WORKER_CONCURRENCY) as deployment:
        deployment.stub_llm(tokens=CHAT_TOKENS, rate=CHAT_RATE)
        gateway = deployment.gateway()
        deployment.worker("ingest")
        deployment.worker("query")
        tenant = await chat_tenant(gateway)
        async with in_process(deployment.env, ctx.infra.log_dir) as local:
            chats = Chats(gateway, local, tenant)
            await run_n(10, 2, chats.pipeline)  # warm-up: connections, caches, JIT-less paths
            await run_n(10, 2, chats.baseline)
            figures = await overhead(ctx, chats)
            figures += await _hops(ctx, gateway, tenant, deployment)
            figures += await throughput(ctx, chats, deployment)
    return figures


async def overhead(ctx: Context, chats: Chats) -> list[Figure]:
    figures: list[Figure] = []
    for level in LEVELS:
        n = ctx.size({1: 40, 10: 200, 100: 400}[level], {1: 20, 10: 80, 100: 200}[level])
        piped: list[StreamResult] = []
        local: list[StreamResult] = []
        piped_cpu, local_cpu = CpuMeter(), CpuMeter()
        for _ in range(2):  # two rounds each, alternated
            with local_cpu.span():
                local += await run_n(n // 2, level, chats.baseline)
            with piped_cpu.span():
                piped += await run_n(n // 2, level, chats.pipeline)
        cpu = {
            "pipeline": piped_cpu.summary(len(piped)),
            "in_process": local_cpu.summary(len(local)),
        }
        figures += _overhead_figures(level, piped, local, cpu)
    return figures


def _overhead_figures(
    level: int, piped: list[StreamResult], local: list[StreamResult], cpu: dict[str, Any]
) -> list[Figure]:
    cores = cpu["pipeline"]["cores"]
    figures = [
        Figure(
            name=f"1. {what}, {level} streams",
            target="",
            measured=cpu["pipeline"][key],
            unit=unit,
            baseline=cpu["in_process"][key],
            baseline_label="in-process",
            details={"cpu": cpu},
        )
        for what, key, unit in (
            ("machine CPU per chat", "cpu_ms_per_chat", "ms"),
            (f"cores busy (of {cores})", "cores_busy", ""),
        )
    ]
    for label, attr in (("first token", "ttft"), ("last token", "ttlt")):
        p = [getattr(r, attr) for r in piped if getattr(r, attr) is not None]
        b = [getattr(r, attr) for r in local if getattr(r, attr) is not None]
        details = {"pipeline_ms": summary_ms(p), "in_process_ms": summary_ms(b), "cpu": cpu}
        for q in (50, 95, 99):
            added = (pct(p, q) - pct(b, q)) * 1000
            target, met = "", None
            if level == 10 and q in (50, 99):
                limit = 5.0 if q == 50 else 20.0
                target, met = f"added ≤ {limit:g} ms", added <= limit
            figures.append(
                Figure(
                    name=f"1. time to {label} p{q}, {level} streams",
                    target=target,
                    measured=round(pct(p, q) * 1000, 2),
                    unit="ms",
                    baseline=round(pct(b, q) * 1000, 2),
                    baseline_label="in-process",
                    added=round(added, 2),
                    met=met,
                    details=details,
                )
            )
    return figures


async def _hops(
    ctx: Context, gateway: Proc, tenant: ChatTenant, deployment: Deployment
) -> list[Figure]:
    n = ctx.size(200, 100)
    http = await hops.http_round_trips(gateway.base_url, tenant.account, n)
    bootstrap = deployment.env["KAFKA_BOOTSTRAP_SERVERS"]
    kafka = await hops.kafka_hops(bootstrap, n)
    idle = await hops.kafka_hops(bootstrap, ctx.size(60, 30), idle=IDLE_BEFORE_HOP)
    parts = (
        ("one authenticated HTTP round trip to the gateway", http, "http_ms"),
        ("one Kafka hop (publish acks=all → consumed)", kafka, "kafka_ms"),
        (f"one Kafka hop after {IDLE_BEFORE_HOP * 1000:g} ms idle", idle, "kafka_idle_ms"),
    )
    return [
        Figure(
            name=f"1. part: {label}, p{q}",
            target="",
            measured=timings[f"p{q}"],
            unit="ms",
            details={key: timings},
        )
        for label, timings, key in parts
        for q in (50, 99)
    ]


async def _best_rate(ctx: Context, one: Any) -> dict[str, Any]:
    """Chats/s at each concurrency step, and the best rate whose p95 < 3 s."""
    steps: list[dict[str, Any]] = []
    for concurrency in (8, 32) if ctx.quick else (4, 8, 16, 32, 64):
        results, wall = await closed_loop(ctx.size(10, 6), concurrency, one)
        latencies = [r.ttlt for r in results]
        steps.append(
            {
                "concurrency": concurrency,
                "chats": len(results),
                "wall_s": round(wall, 2),
                "chats_per_s": round(len(results) / wall, 2),
                "ttlt_ms": summary_ms(latencies),
            }
        )
    passing = [s for s in steps if s["ttlt_ms"]["p95"] < P95_LIMIT * 1000]
    best = max((s["chats_per_s"] for s in passing), default=0.0)
    return {"best_chats_per_s": best, "steps": steps}


async def throughput(ctx: Context, chats: Chats, deployment: Deployment) -> list[Figure]:
    # The baseline is measured next to each configuration: the machine's
    # load moves between the two.
    baseline_1 = await _best_rate(ctx, chats.baseline)
    one_worker = await _best_rate(ctx, chats.pipeline)
    deployment.worker("query")
    await run_n(10, 4, chats.pipeline)  # the group rebalanced onto both workers
    baseline_2 = await _best_rate(ctx, chats.baseline)
    two_workers = await _best_rate(ctx, chats.pipeline)
    figures = []
    for label, measured, baseline in (
        ("1 query worker", one_worker, baseline_1),
        ("2 query workers", two_workers, baseline_2),
    ):
        figures.append(
            Figure(
                name=f"4. chats/s at p95 < 3 s, 1 gateway + {label}",
                target="(ratio to in-process)",
                measured=measured["best_chats_per_s"],
                unit="chats/s",
                baseline=baseline["best_chats_per_s"],
                baseline_label="in-process",
                details={"pipeline": measured, "in_process": baseline},
            )
        )
    return figures
