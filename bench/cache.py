"""#7 answer cache: one question asked again and again through the whole
pipeline, with RAG_USE_CACHE on against off. With it on, every ask after the
first is answered from Redis (no retrieval, no LLM); off, each is answered
afresh (the stub LLM taking its fixed 0.25 s)."""

from __future__ import annotations

from bench.client import StreamResult, stream_chat
from bench.common import CHAT_RATE, CHAT_TOKENS, Context, chat_tenant, run_n
from bench.results import Figure, summary_ms


async def _repeat(ctx: Context, cache: bool) -> dict[str, dict[str, float]]:
    with ctx.infra.deployment(RAG_USE_CACHE=str(cache).lower()) as deployment:
        deployment.stub_llm(tokens=CHAT_TOKENS, rate=CHAT_RATE)
        gateway = deployment.gateway()
        deployment.worker("ingest")
        deployment.worker("query")
        tenant = await chat_tenant(gateway)
        question = tenant.questions[0]

        async def ask(_: int) -> StreamResult:
            result = await stream_chat(
                gateway.base_url, tenant.account.token, {"message": question}
            )
            if result.status != 200 or result.terminal != "done" or result.tokens != CHAT_TOKENS:
                raise RuntimeError(f"a cache benchmark chat went wrong: {result}")
            return result

        await run_n(3, 1, ask)  # the first answer fills the cache (when on)
        results = await run_n(ctx.size(40, 15), 1, ask)
    return {
        "ttft_ms": summary_ms([r.ttft for r in results if r.ttft is not None]),
        "ttlt_ms": summary_ms([r.ttlt for r in results]),
    }


async def run(ctx: Context) -> list[Figure]:
    on = await _repeat(ctx, cache=True)
    off = await _repeat(ctx, cache=False)
    details = {"cache_on": on, "cache_off": off}
    return [
        Figure(
            name=f"7. repeated question, time to {label} p50, RAG_USE_CACHE on",
            target="(ratio to cache off)",
            measured=on[key]["p50"],
            unit="ms",
            baseline=off[key]["p50"],
            baseline_label="cache off",
            added=round(on[key]["p50"] - off[key]["p50"], 2),
            details=details,
        )
        for label, key in (("first token", "ttft_ms"), ("last token", "ttlt_ms"))
    ]
