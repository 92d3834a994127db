"""Which generations nobody is waiting for any more.

Every query worker reads every cancel (no consumer group): the one that is
generating stops, the others remember the id for a while in case the request
is still queued behind others.

A cancel counts only for a stream of the same tenant and user: knowing
someone's stream id is not enough to stop their answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from uuid import UUID

from shared.contracts.events import ChatCancel, ChatRequest

_REMEMBER_SECONDS = 600.0


@dataclass
class Cancellations:
    _cancelled: dict[tuple[str, UUID, UUID], tuple[float, str]] = field(default_factory=dict)

    def cancel(self, cancel: ChatCancel) -> None:
        now = time.monotonic()
        key = (cancel.stream_id, cancel.tenant_id, cancel.user_id)
        self._cancelled[key] = (now, cancel.reason)
        if len(self._cancelled) > 1000:
            self._cancelled = {
                key: (at, reason)
                for key, (at, reason) in self._cancelled.items()
                if now - at < _REMEMBER_SECONDS
            }

    def reason(self, request: ChatRequest) -> str | None:
        """Why the request was cancelled, or None if it was not."""
        found = self._cancelled.get((request.stream_id, request.tenant_id, request.user_id))
        return found[1] if found else None

    def is_cancelled(self, request: ChatRequest) -> bool:
        return self.reason(request) is not None
