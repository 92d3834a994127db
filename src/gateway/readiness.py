"""Readiness checks at most once a second per process, however often asked.

``/health/ready`` is public: a caller polling it in a loop would otherwise
make every gateway process ping PostgreSQL, Kafka, Redis and Chroma once per
request. Callers within ``max_age`` of the last check share its result, and
concurrent callers share one check in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_AGE_SECONDS = 1.0


@dataclass
class ReadinessCache(Generic[T]):
    max_age: float = MAX_AGE_SECONDS
    _result: T | None = None
    _at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, check: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The latest result, and whether this call ran the check."""
        async with self._lock:
            if self._result is not None and time.monotonic() - self._at < self.max_age:
                return self._result, False
            self._result = await check()
            self._at = time.monotonic()
            return self._result, True
