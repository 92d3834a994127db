"""Readiness results shared for a second, and one check in flight at a time
(gateway.readiness)."""

from __future__ import annotations

import asyncio

from gateway.readiness import ReadinessCache


async def test_callers_within_a_second_share_one_check() -> None:
    runs = 0

    async def check() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)
        return runs

    cache: ReadinessCache[int] = ReadinessCache(max_age=0.3)
    results = await asyncio.gather(*(cache.get(check) for _ in range(50)))
    assert runs == 1
    assert sorted(fresh for _, fresh in results) == [False] * 49 + [True]
    assert {value for value, _ in results} == {1}
    await asyncio.sleep(0.35)
    assert await cache.get(check) == (2, True)
