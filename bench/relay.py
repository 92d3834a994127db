"""#2 token relay: tokens/s one gateway process relays to SSE clients, with
the worker's coalescing on (the default, TOKEN_COALESCE_WORDS=6) and off (1).

The answers come from ``bench.blaster``: a stand-in query worker that
answers every request at once through the real ``ReplyStream``, so what is
measured is Kafka → gateway → SSE, not retrieval or a model. The gateway
shares the machine's two cores with the blaster, Kafka and the clients, so
two figures are given: tokens/s at the clients (wall), and tokens per
CPU-second the gateway process used: its capacity, were it given a core of
its own. Coalescing off is set against coalescing on.
"""

from __future__ import annotations

import httpx

from bench.client import StreamResult, sign_up, stream_chat
from bench.common import Context, closed_loop, cpu_seconds, run_n
from bench.results import Figure

RELAY_TOKENS = 400
CONCURRENCY = 16
# Tokens/s per stream: ten times a fast model's. An unpaced burst of more than
# STREAM_QUEUE_SIZE events reaches the gateway in one fetch and is cut as
# overflow however fast the client reads (docs/performance.md).
RATE_PER_STREAM = 2000.0
TARGET = 20_000.0


async def _measure(ctx: Context, coalesce: int) -> dict[str, float]:
    with ctx.infra.deployment(TOKEN_COALESCE_WORDS=str(coalesce)) as deployment:
        gateway = deployment.gateway()
        deployment.blaster(RELAY_TOKENS, RATE_PER_STREAM)
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
            account = await sign_up(http)

        async def one(_: int) -> StreamResult:
            body = {"message": "Relay this"}
            result = await stream_chat(gateway.base_url, account.token, body)
            complete = result.terminal == "done" and result.tokens == RELAY_TOKENS
            # A stream the gateway cut because it fell behind is a result, not a failure.
            if result.status != 200 or not (complete or '"overflow"' in result.last):
                raise RuntimeError(f"a relay benchmark chat went wrong: {result}")
            return result

        await run_n(8, 4, one)
        cpu_before = cpu_seconds(gateway)
        results, wall = await closed_loop(ctx.size(15, 6), CONCURRENCY, one)
        gateway_cpu = cpu_seconds(gateway) - cpu_before
    tokens = sum(r.tokens for r in results)
    cut = sum(1 for r in results if r.terminal != "done")
    events = sum(r.events for r in results)
    return {
        "tokens_per_s": tokens / wall,
        "tokens_per_gateway_cpu_s": tokens / gateway_cpu if gateway_cpu else 0.0,
        "tokens": tokens,
        "sse_events": events,
        "wall_s": round(wall, 2),
        "gateway_cpu_s": round(gateway_cpu, 2),
        "gateway_cpu_share": round(gateway_cpu / wall, 2),
        "tokens_per_event": round(tokens / events, 2) if events else 0.0,
        "streams": len(results),
        "streams_cut_overflow": cut,
        "concurrency": CONCURRENCY,
        "answer_tokens": RELAY_TOKENS,
        "offered_tokens_per_s": CONCURRENCY * RATE_PER_STREAM,
    }


def _figures(label: str, measured: dict[str, float], base: dict[str, float] | None) -> list[Figure]:
    details = {"measured": measured, "coalescing_on": base}
    per_cpu = measured["tokens_per_gateway_cpu_s"]
    return [
        Figure(
            name=f"2. tokens/s relayed to SSE clients, {label}",
            target="",
            measured=round(measured["tokens_per_s"]),
            unit="tok/s",
            baseline=round(base["tokens_per_s"]) if base else None,
            baseline_label="coalescing on" if base else "",
            details=details,
        ),
        Figure(
            name=f"2. tokens per gateway CPU-second, {label}",
            target=f"≥ {TARGET:,.0f} tok/s per process",
            measured=round(per_cpu),
            unit="tok/s",
            baseline=round(base["tokens_per_gateway_cpu_s"]) if base else None,
            baseline_label="coalescing on" if base else "",
            met=per_cpu >= TARGET,
            details=details,
        ),
    ]


async def run(ctx: Context) -> list[Figure]:
    on = await _measure(ctx, 6)
    off = await _measure(ctx, 1)
    return [
        *_figures("coalescing on (TOKEN_COALESCE_WORDS=6)", on, None),
        *_figures("coalescing off (TOKEN_COALESCE_WORDS=1)", off, on),
    ]
