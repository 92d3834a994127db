"""#3 open streams: how many concurrent idle SSE streams one gateway process
holds, and its memory per stream.

No query worker runs, so every chat waits in Kafka and its stream stays open
with nothing to relay (until STREAM_TIMEOUT, set to its maximum here); the
gateway holds the connection, the relay task, the inbox and the user's stream
slot for each. Memory per stream is the gateway's resident set after opening
them all, less before, over their number.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.client import Account, OpenStream, sign_up
from bench.common import Context
from bench.results import Figure

PER_USER = 1000  # MAX_CONCURRENT_STREAMS in the benchmark deployment
TARGET_STREAMS = 5000
TARGET_KB = 100.0
OPEN_TIMEOUT = 30.0  # seconds for a stream's response headers
# Statuses of streams not held, in the JSON's details.
NO_HEADERS_IN_TIME, REFUSED_OR_RESET = -1, -2


def stream_id(i: int, kind: str = "stream") -> str:
    """The X-Request-ID of the i-th stream: the gateway logs it as correlation_id."""
    return f"bench-{kind}-{i:05d}"


async def _open_all(
    url: str, accounts: list[Account], n: int, kind: str = "stream"
) -> list[OpenStream]:
    streams = [OpenStream() for _ in range(n)]
    gate = asyncio.Semaphore(100)
    body = {"message": "What is held open?", "stream_timeout": 300}

    async def open_one(i: int) -> None:
        async with gate:
            try:
                opening = streams[i].open(
                    url, accounts[i // PER_USER].token, body, stream_id(i, kind)
                )
                await asyncio.wait_for(opening, OPEN_TIMEOUT)
            except TimeoutError:
                streams[i].status = NO_HEADERS_IN_TIME
            except (OSError, asyncio.IncompleteReadError):
                streams[i].status = REFUSED_OR_RESET

    await asyncio.gather(*(open_one(i) for i in range(n)))
    return streams


async def run(ctx: Context) -> list[Figure]:
    n = TARGET_STREAMS
    with ctx.infra.deployment(STREAM_TIMEOUT="300") as deployment:
        gateway = deployment.gateway()
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
            accounts = [await sign_up(http) for _ in range(-(-n // PER_USER))]
            # One stream opened and closed first: lazily built state is not per stream.
            warm = await _open_all(gateway.base_url, accounts[:1], 20, kind="warm")
            for s in warm:
                s.close()
            await asyncio.sleep(2)
            before_kb = gateway.rss_kb()
            began = time.perf_counter()
            streams = await _open_all(gateway.base_url, accounts, n)
            open_seconds = time.perf_counter() - began
            await asyncio.sleep(3)
            after_kb = gateway.rss_kb()
            health_began = time.perf_counter()
            healthy = (await http.get("/health")).status_code == 200
            health_ms = (time.perf_counter() - health_began) * 1000
            held = sum(1 for s in streams if s.status == 200)
            statuses: dict[int, int] = {}
            stuck: dict[str, int] = {}  # where the streams not held stopped
            not_held: list[str] = []  # their ids, to look for in the gateway's log
            for i, s in enumerate(streams):
                statuses[s.status] = statuses.get(s.status, 0) + 1
                if s.status != 200:
                    stuck[s.phase] = stuck.get(s.phase, 0) + 1
                    not_held.append(stream_id(i))
            for s in streams:
                s.close()
            await asyncio.sleep(1)  # let the closes reach the gateway before it stops
    per_stream_kb = (after_kb - before_kb) / held if held else float("nan")
    details = {
        "opened": n,
        "held": held,
        "statuses": statuses,
        "not_held_at": stuck,
        "not_held_ids": not_held[:20],
        "rss_before_kb": before_kb,
        "rss_after_kb": after_kb,
        "open_seconds": round(open_seconds, 2),
        "health_while_open_ms": round(health_ms, 1),
        "healthy_while_open": healthy,
    }
    return [
        Figure(
            name="3. idle SSE streams held by one gateway process",
            target=f"≥ {TARGET_STREAMS:,}",
            measured=held,
            unit="streams",
            met=held >= TARGET_STREAMS,
            details=details,
        ),
        Figure(
            name="3. gateway memory per open stream",
            target=f"≤ {TARGET_KB:g} KB",
            measured=round(per_stream_kb, 1),
            unit="KB",
            met=per_stream_kb <= TARGET_KB,
            details=details,
        ),
    ]
