"""Which generations nobody is waiting for any more.

Every query worker reads every cancel (no consumer group): the one that is
generating stops, the others remember the id for a while in case the request
is still queued behind others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

_REMEMBER_SECONDS = 600.0


@dataclass
class Cancellations:
    _cancelled: dict[str, float] = field(default_factory=dict)

    def cancel(self, correlation_id: str) -> None:
        now = time.monotonic()
        self._cancelled[correlation_id] = now
        if len(self._cancelled) > 1000:
            self._cancelled = {
                cid: at for cid, at in self._cancelled.items() if now - at < _REMEMBER_SECONDS
            }

    def is_cancelled(self, correlation_id: str) -> bool:
        return correlation_id in self._cancelled
