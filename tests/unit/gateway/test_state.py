"""The gateway's background work at shutdown: finished work is waited for,
what overruns the grace is cut and counted in one line."""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs

from gateway.state import Gateway


def _gateway() -> Gateway:
    # Background work needs none of the clients.
    none: Any = None
    return Gateway(clients=none, replies=none, tokens=none, lease=none, document_events=none)


async def test_work_that_finishes_in_time_is_waited_for() -> None:
    gateway = _gateway()
    done: list[int] = []

    async def publish(n: int) -> None:
        await asyncio.sleep(0.01)
        done.append(n)

    for n in range(3):
        gateway.spawn(publish(n))
    with capture_logs() as logs:
        await gateway.drain(grace=2)
    assert sorted(done) == [0, 1, 2]
    assert logs == []


async def test_work_past_the_grace_is_cut_with_one_line_not_one_error_each() -> None:
    gateway = _gateway()
    started = asyncio.Event()
    cut: list[int] = []

    async def stuck(n: int) -> None:
        started.set()
        try:
            await asyncio.sleep(60)  # a publish to a broker that no longer answers
        except asyncio.CancelledError:
            cut.append(n)
            raise

    for n in range(50):
        gateway.spawn(stuck(n))
    await started.wait()
    with capture_logs() as logs:
        await gateway.drain(grace=0.05)
    assert sorted(cut) == list(range(50))
    assert [(e["event"], e["log_level"], e.get("tasks")) for e in logs] == [
        ("Background work cut at shutdown", "warning", 50)
    ]


async def test_a_failure_is_still_logged_as_an_error() -> None:
    gateway = _gateway()

    async def broken() -> None:
        raise RuntimeError("broker gone")

    with capture_logs() as logs:
        gateway.spawn(broken())
        await gateway.drain(grace=1)
        await asyncio.sleep(0)  # the done callback runs after the wait returns
    assert [(e["event"], e["log_level"]) for e in logs] == [("Background task failed", "error")]
